"The job dashboard alone (`fh_saas.ui.mount_jobs`) for one tenant ($TENANT, default acme) under $DATA_DIR."
import os
from fasthtml.common import fast_app
from fh_saas.db_host import SqliteHost
from fh_saas.ui import mount_jobs

def create_app():
    host = SqliteHost(os.environ['DATA_DIR'])
    tenant = os.environ.get('TENANT', 'acme')
    app, rt = fast_app(secret_key='store-app-test-only')
    mount_jobs(app, tenant_of=lambda req: tenant, host=host, prefix='/jobs')
    return app
