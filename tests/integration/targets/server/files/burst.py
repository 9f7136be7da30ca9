"""Starts one module binary process per server, all at once, on the same file, and waits for all of them.

    python3 burst.py BINARY CONFIG SOCKET BACKEND STATE SERVER...

Ansible's async launches are spread out in time; this puts every run inside the same few milliseconds so
that the module's lock really is contended. Prints a JSON list of {server, rc, result}.
"""

import json
import os
import subprocess
import sys
import tempfile


def main(binary, config, socket, backend, state, *servers):
    workdir = tempfile.mkdtemp(prefix="burst.")
    procs = []
    for server in servers:
        args_path = os.path.join(workdir, server + ".json")
        with open(args_path, "w") as handle:
            json.dump({"path": config, "socket": socket, "backend": backend, "server": server, "state": state,
                       "lock_timeout": 60, "backup": False}, handle)
        procs.append((server, subprocess.Popen([binary, args_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
    outcomes = []
    for server, proc in procs:
        out, err = proc.communicate(timeout=120)
        try:
            result = json.loads(out)
        except ValueError:
            result = {"failed": True, "msg": "not JSON", "stdout": out.decode(errors="replace"),
                      "stderr": err.decode(errors="replace")}
        outcomes.append({"server": server, "rc": proc.returncode, "result": result})
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main(*sys.argv[1:])
