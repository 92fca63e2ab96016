# Persistence of config objects on the board's flash (or SIM_DIR on the Unix port).
# Each object is one JSON file, replaced atomically: write <name>.tmp, then rename over the
# old file, so a power loss at any point leaves either the old or the new file, never a mix.
import json
import os


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class Store:
    def __init__(self, directory):
        self.directory = directory.rstrip("/") or "."
        # Create the directory and its parents (os.makedirs is not in MicroPython).
        parts = self.directory.split("/")
        cur = "" if parts[0] else "/"
        for p in parts:
            if not p:
                continue
            cur = cur + p if (not cur or cur.endswith("/")) else cur + "/" + p
            if not _exists(cur):
                os.mkdir(cur)

    def _path(self, name):
        return "%s/%s.json" % (self.directory, name.replace("/", "_"))

    def exists(self, name):
        return _exists(self._path(name))

    def load(self, name):
        """Return the stored dict, None when there is none; raise ValueError/OSError when the
        file is unreadable or not a JSON object."""
        path = self._path(name)
        if not _exists(path):
            return None
        with open(path) as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError("stored file is not a JSON object")
        return data

    def save(self, name, values):
        path = self._path(name)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(values, f)
        os.rename(tmp, path)
