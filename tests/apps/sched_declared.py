"For `fh-saas-worker --imports apps.sched_tasks,apps.sched_declared`: declares the tests' one-second schedule."
from fh_saas.schedules import SCHEDULES
from apps.sched_tasks import TICK

SCHEDULES[TICK.name] = TICK   # what `schedule('tick', tick, every=1)` does
