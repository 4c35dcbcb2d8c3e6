"""Error mapping: each failure raises the relay.Error subclass of its relay_err, with the code,
the enum name, librelay's message and the logged cause."""
import numpy as np
import pytest

import relay


def test_hierarchy():
    for code, cls in relay.ERRORS.items():
        assert issubclass(cls, relay.Error) and cls.code == code
        e = cls(code, "what")
        assert e.code == code and e.name.startswith("RELAY_E") and e.strerror
        assert str(e).startswith("what: ")
    assert relay.ERRORS[7] is relay.NotFound and relay.ERRORS[20] is relay.ShapeError


def test_config_errors(tmp_path):
    with pytest.raises(relay.ConfigError) as ei:
        relay.Agent({"routers": 0})
    assert ei.value.code == 22 and ei.value.name == "RELAY_ECONFIG"
    assert "routers" in str(ei.value)  # the logged cause names the key
    with pytest.raises(relay.ConfigError, match="no_such_key"):
        relay.Agent({"no_such_key": 1})
    with pytest.raises(relay.ConfigError, match="routerz"):
        relay.Agent(routerz=2)
    with pytest.raises(relay.IOError):
        relay.Agent(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(relay.FormatError):
        relay.Agent(str(bad))
    with pytest.raises(TypeError):
        relay.Agent(42)


def test_call_errors(cartpole_model, tmp_path):
    a = relay.Agent(start=False)
    with pytest.raises(relay.StateError):
        a.new_actors(1, model=cartpole_model, env="CartPole-v1")
    a.start()
    ids = a.new_actors(1, model=cartpole_model, env="CartPole-v1")
    with pytest.raises(relay.ShapeError, match="model input has 4"):
        a.new_actors(1, model=cartpole_model, env="Acrobot-v1")
    with pytest.raises(relay.NotFound, match="NoSuchEnv"):
        a.run_env(ids[0], env="NoSuchEnv-v0", steps=1)
    with pytest.raises(relay.InvalidArgument):
        a.scale_throughput(0)
    with pytest.raises(relay.AlreadyExists):
        a.new_actors(1, model=cartpole_model, env="CartPole-v1", ids=ids)
    with pytest.raises(relay.NotFound, match="none.onnx"):
        relay.Model(str(tmp_path / "none.onnx"))
    with pytest.raises(relay.Error) as ei:
        relay.Model(b"this is not onnx")
    assert ei.value.code in (13, 14)  # malformed or truncated
    a.shutdown()
    with pytest.raises(relay.StateError):
        a.request_action(ids, np.zeros((1, 4), np.float32))
    a.close()
    with pytest.raises(relay.StateError, match="closed"):
        a.stats()


def test_train_errors():
    with pytest.raises(relay.NotFound):
        relay.train("NoSuchEnv-v9")
    with pytest.raises(TypeError, match="learning_rat"):
        relay.train("CartPole-v1", learning_rat=1e-3)
    with pytest.raises(relay.ConfigError):
        relay.train("CartPole-v1", actors=0)
