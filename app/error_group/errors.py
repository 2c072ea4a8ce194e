from app.errors import AppError


class ErrorGroupNotFound(AppError):
    status = 404
    title = "Error group not found"
    type_slug = "error-group-not-found"
