from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "web"
    verbose_name = "Web"

    def ready(self) -> None:
        from web import url_converters
        from web.json_logs import install_record_factory

        install_record_factory()
        url_converters.register()
