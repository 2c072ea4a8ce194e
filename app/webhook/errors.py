from app.errors import AppError


class DeliveryNotFound(AppError):
    status = 404
    title = "Webhook delivery not found"
    type_slug = "webhook-delivery-not-found"


class DeliveryInProgress(AppError):
    status = 409
    title = "Webhook delivery in progress"
    type_slug = "webhook-delivery-in-progress"
