"""The api zip carries what /docs serves offline (functions/api/routes/docs.py): Swagger UI's files
from the pinned fastapi-offline package, and not the ReDoc bundle it also ships (1 MiB the api
zip's 70 MiB budget has no room for; serverless.yml's slimPatterns drop it)."""

from functions.api.routes import docs


def test_the_api_zip_has_the_swagger_ui_files_and_not_redoc(packaged):
    names = set(packaged.api.namelist())
    static = f"{docs.ASSET_PACKAGE}/static"
    served = {f"{static}/{name}" for name in docs.ASSETS if name != "swagger-initializer.js"}  # the initializer is docs.py's own
    assert served <= names, served - names
    assert f"{docs.ASSET_PACKAGE}/__init__.py" in names  # importlib.resources imports the package
    assert not any(name.startswith(static) and "redoc" in name for name in names)
    assert packaged.api.getinfo(f"{static}/swagger-ui-bundle.js").file_size > 500_000


def test_the_train_zip_has_no_docs_assets(packaged):
    assert not any(name.startswith(docs.ASSET_PACKAGE) for name in packaged.train.namelist())
