"""`python -m minerd.sim.workerproc`: one rig worker process of a large simulated site.

Kept apart from minerd.sim.workers so that running it does not re-import a loaded module.
"""

from minerd.sim.workers import worker_main

if __name__ == "__main__":
    worker_main()
