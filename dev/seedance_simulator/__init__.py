"""A local Seedance image-to-video API simulator: the provider's API over real HTTP in both of its dialects
(the unified gateway's `/v2/videos/generations` and the native Ark `/api/v3/contents/generations/tasks`),
real H.264 MP4 results rendered from the input image, and knobs for every failure a client must survive.

    from seedance_simulator import SimulatorServer, Knobs

    with SimulatorServer(api_key="test-key", knobs=Knobs(run_seconds=1.0)) as server:
        submit_url = server.base_url + "/v2/videos/generations"
        ark_tasks_url = server.ark_base_url + "/contents/generations/tasks"
"""

from .errors import ApiError
from .knobs import RESPONSE_SHAPES, Counters, Knobs
from .server import SimulatorServer
from .task_states import MODERATION_REASON
from .tasks import TaskRecord

__all__ = ["MODERATION_REASON", "RESPONSE_SHAPES", "ApiError", "Counters", "Knobs", "SimulatorServer", "TaskRecord"]
