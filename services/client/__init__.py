"""Client side of the mesh: discovery cache, balancers, failover Router, batch runner.

from services.client import Router
with Router("http://127.0.0.1:8500", fallbacks={"compass": ["compass-lite"]}) as router:
    result = router.call("affinity", "POST", "/predict", json={...}, deadline=10)
    print(result.service, result.instance, result.model, result.attempts, result.fallback_used)
"""

from services.client.balancers import BALANCERS as BALANCERS
from services.client.balancers import DEFAULT_BALANCER as DEFAULT_BALANCER
from services.client.balancers import Balancer as Balancer
from services.client.balancers import LeastConnections as LeastConnections
from services.client.balancers import PowerOfTwoChoices as PowerOfTwoChoices
from services.client.balancers import RandomBalancer as RandomBalancer
from services.client.balancers import RoundRobin as RoundRobin
from services.client.balancers import make_balancer as make_balancer
from services.client.call import CallResult as CallResult
from services.client.discovery import Discovery as Discovery
from services.client.discovery import Snapshot as Snapshot
from services.client.discovery import StaticDiscovery as StaticDiscovery
from services.client.errors import AllAttemptsFailed as AllAttemptsFailed
from services.client.errors import Attempt as Attempt
from services.client.errors import ClientError as ClientError
from services.client.errors import DeadlineExceeded as DeadlineExceeded
from services.client.errors import NoInstanceAvailable as NoInstanceAvailable
from services.client.errors import RegistryUnavailable as RegistryUnavailable
from services.client.errors import RequestFailed as RequestFailed
from services.client.load import LoadTracker as LoadTracker
from services.client.load import LoadView as LoadView
from services.client.policy import EjectionPolicy as EjectionPolicy
from services.client.policy import RetryPolicy as RetryPolicy
from services.client.registry_client import RegistryClient as RegistryClient
from services.client.router import Router as Router
