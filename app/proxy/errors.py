from app.errors import AppError


class ProxyNotFound(AppError):
    status = 404
    title = "Proxy not found"
    type_slug = "proxy-not-found"


class ProxyPoolNotFound(AppError):
    status = 404
    title = "Proxy pool not found"
    type_slug = "proxy-pool-not-found"
