"""``ttsopt serve --ray --address``: join an existing two-node Ray cluster and serve from a replica on each node.

The cluster is Ray's own test cluster (``ray.cluster_utils.Cluster``: a head and a worker node, one CPU each,
as separate raylets on this machine), so replicas land on different nodes the way they would on two machines.
The script checks what a cluster user relies on: both nodes hold a replica, concurrent seeded requests give
identical audio whichever replica answers, a burst beyond what they admit gets 200 or 429 only, and stopping
the server deletes only its application and leaves the cluster running. Everything is stopped through its
own handle (the server by its pid, the cluster by ``Cluster.shutdown``), never by process name.

    python examples/ray_two_nodes.py build/tiny-tts
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import ray
from ray import serve
from ray.cluster_utils import Cluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.serve.conftest
from tests.serve.conftest import running_server  # noqa: E402

PHONEMES = "n i2 h ao3 , w o3 sh i4 b ai2 y e4 ."


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("package")
    parser.add_argument("--requests", type=int, default=6)
    args = parser.parse_args()

    started = time.perf_counter()
    # On the machine's own address, as a real cluster is: a driver joining with --address connects through it
    # (Ray rewrites a 127.0.0.1 bootstrap address to the node's address), and Ray's ports listen on every interface.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    print(f"cluster of {len(cluster.list_all_nodes())} nodes at {cluster.address} ({time.perf_counter() - started:.0f} s)")
    try:
        started = time.perf_counter()
        with running_server(args.package, "--ray", "--address", cluster.address, "--replicas", "2", "--lang", "phonemes",
                            "--cache-mb", "0", startup_s=300, stop_s=60) as url:
            print(f"serving at {url} ({time.perf_counter() - started:.0f} s to the first answer)")
            ray.init(address=cluster.address, logging_level="WARNING")
            # The GCS actor table (the state API would need Ray's dashboard, which this cluster does not run).
            actors = ray._private.state.actors().values()
            replicas = [a for a in actors if a["State"] == "ALIVE" and "ServeReplica" in a["ActorClassName"]]
            nodes = {a["Address"]["NodeID"] for a in replicas}
            print(f"{len(replicas)} replicas on {len(nodes)} nodes")

            body = {"model": "m", "input": PHONEMES, "voice": "fox", "response_format": "pcm", "seed": 3, "max_tokens": 100}

            def post(_: int) -> httpx.Response:
                return httpx.post(f"{url}/v1/audio/speech", json=body, timeout=300)

            with ThreadPoolExecutor(args.requests) as pool:
                answers = list(pool.map(post, range(args.requests)))
            failed = [f"{a.status_code}: {a.text[:200]}" for a in answers if a.status_code != 200]
            if failed:
                print("failed requests:", *failed, sep="\n  ")
            audio = [np.frombuffer(a.content, np.int16) for a in answers if a.status_code == 200]
            same = not failed and audio[0].size > 0 and all(np.array_equal(a, audio[0]) for a in audio)
            print(f"{args.requests} concurrent seeded requests: {'identical audio' if same else 'DIFFERENT or failed'}")

            burst = 3 * 2 * 8  # three times what two replicas admit and queue (4 running + 4 waiting each, by default)
            with ThreadPoolExecutor(burst) as pool:
                codes = [answer.status_code for answer in pool.map(post, range(burst))]
            statuses = {code: codes.count(code) for code in sorted(set(codes))}
            print(f"a burst of {burst}: status codes {statuses}")
            no_errors = set(statuses) <= {200, 429}
        # the server is stopped now (by its pid): its application must be gone, the cluster still up
        left = serve.status().applications
        alive = len(ray.nodes()) == 2 and all(node["Alive"] for node in ray.nodes())
        print(f"server stopped: applications left {sorted(left) or 'none'}, cluster still up: {alive}")
        ok = len(nodes) == 2 and same and no_errors and "ttsopt" not in left and alive
        print("PASS" if ok else "FAIL")
        raise SystemExit(0 if ok else 1)
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
