from app.errors import AppError


class Unauthorized(AppError):
    status = 401
    title = "Unauthorized"
    type_slug = "unauthorized"


class Forbidden(AppError):
    status = 403
    title = "Forbidden"
    type_slug = "forbidden"


class ApiKeyNotFound(AppError):
    status = 404
    title = "API key not found"
    type_slug = "api-key-not-found"
