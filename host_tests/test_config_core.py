"""Config objects, the registry and persistence, run on the MicroPython Unix port."""
import json

from mp import run_mp

_SETUP = """
from firmware.api.config import Field, ConfigObject, BOOL, INT, STR, INT_LIST
from firmware.api.registry import Registry, ApiError
from firmware.api.store import Store
store = Store(%r)
def check(v):
    if v['a'] > v['b']:
        return "a cannot be above b"
obj = ConfigObject('x/config', [Field('a', INT, 1, 0, 10), Field('b', INT, 5, 0, 10),
                   Field('on', BOOL, False), Field('pw', STR, '', hi=8, secret=True)], store, check)
obj.load()
reg = Registry()
reg.add('x/config', obj)
def w(body):
    try:
        reg.write('x/config', body)
        return 200
    except ApiError as e:
        return (e.status, e.message)
"""


def test_write_validate_persist(tmp_path):
    out = run_mp(_SETUP % str(tmp_path) + """
print(w(b'{"a": 3}'))
print(w(b'{"a": 11}'))
print(w(b'{"a": true}'))
print(w(b'{"zz": 1}'))
print(w(b'{"a": 7, "b": 6}'))
print(w(b'nope'))
print(w(b'[1]'))
print(w(b'{"pw": "secret"}'))
import json
print(json.dumps(reg.read('x/config')))
""")
    lines = out.splitlines()
    assert lines[0] == "200"
    assert "above the maximum 10" in lines[1] and "'a'" in lines[1]
    assert "type int" in lines[2]
    assert "unknown key 'zz'" in lines[3]
    assert "a cannot be above b" in lines[4]
    assert lines[5].startswith("(400, 'Failed to parse JSON")
    assert "must be an object" in lines[6]
    assert lines[7] == "200"
    shown = json.loads(lines[8])
    assert shown == {"a": 3, "b": 5, "on": False, "pw": None}
    # Persisted: a new boot finds the accepted values, rejected ones changed nothing.
    saved = json.loads((tmp_path / "x_config.json").read_text())
    assert saved == {"a": 3, "b": 5, "on": False, "pw": "secret"}
    out = run_mp(_SETUP % str(tmp_path) + "print(obj.values['a'], obj.load_error)")
    assert out.split() == ["3", "None"]


def test_corrupt_file_gives_defaults_and_error(tmp_path):
    (tmp_path / "x_config.json").write_text('{"a": 3, "b"')
    out = run_mp(_SETUP % str(tmp_path) + "print(obj.values['a']); print(obj.load_error)")
    lines = out.splitlines()
    assert lines[-2] == "1"
    assert lines[-1].startswith("x/config:")


def test_too_large_body(tmp_path):
    out = run_mp(_SETUP % str(tmp_path) + "print(w(b' ' * 5000)[0])")
    assert out.split()[-1] == "413"
