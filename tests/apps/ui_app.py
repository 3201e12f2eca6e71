"The demo app (`fh_saas.demo`) for the browser tests, with its tenants' SQLite files under $DATA_DIR."
import os
from fh_saas.demo import make_app

def create_app(): return make_app(os.environ['DATA_DIR'])
