"""Jobs and their tasks, the core domain. The API side: ``service`` (submit, read, cancel);
the worker side: ``tasks`` (the queue edge and loop rounds) and ``processing`` (one attempt);
``publish`` sends task ids to the queue, ``events`` writes the job's webhook events, ``checks``,
``gauges`` and ``stats`` report the queue; ``repository`` is its SQL."""
