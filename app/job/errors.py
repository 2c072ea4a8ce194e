from app.errors import AppError


class JobNotFound(AppError):
    status = 404
    title = "Job not found"
    type_slug = "job-not-found"


class IdempotencyConflict(AppError):
    status = 409
    title = "Idempotency key reused with a different request"
    type_slug = "idempotency-conflict"


class JobAlreadyFinished(AppError):
    status = 409
    title = "Job already finished"
    type_slug = "job-already-finished"


class InvalidJob(AppError):
    status = 422
    title = "Invalid job"
    type_slug = "invalid-job"


class InvalidCursor(AppError):
    status = 400
    title = "Invalid cursor"
    type_slug = "invalid-cursor"
