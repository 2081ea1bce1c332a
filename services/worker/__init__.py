"""The runtime every worker is built on: implement :class:`WorkerModel`, call :func:`run_worker_cli`.

Everything not re-exported here is internal to the runtime.
"""

from services.common.backoff import Backoff as Backoff
from services.worker.agent import RegistryAgent as RegistryAgent
from services.worker.app import create_worker_app as create_worker_app
from services.worker.app import worker_state as worker_state
from services.worker.batching import Batched as Batched
from services.worker.batching import MicroBatcher as MicroBatcher
from services.worker.cli import run_worker_cli as run_worker_cli
from services.worker.jobfiles import report_progress as report_progress
from services.worker.jobs import JobPolicy as JobPolicy
from services.worker.jobs import JobRunner as JobRunner
from services.worker.jobs import JobType as JobType
from services.worker.jobs import jobs_table as jobs_table
from services.worker.jobs import new_job_id as new_job_id
from services.worker.model import UploadedFile as UploadedFile
from services.worker.model import WorkerIdentity as WorkerIdentity
from services.worker.model import WorkerModel as WorkerModel
from services.worker.model import item_error as item_error
from services.worker.model import item_ok as item_ok
from services.worker.serve import WorkerServer as WorkerServer
