"""Export a PyTorch MLP policy to ONNX that Relay loads (optional: needs torch, never required)."""
import io


def export_torch_mlp(module, obs_dim, path=None, opset=17):
    """Export module (an nn.Sequential of Linear and ReLU/Tanh/Sigmoid/Softmax layers) to ONNX.

    Returns the ONNX bytes (and writes them to path when given); the result can be passed to
    relay.Model, Agent.new_actors(model=...) or Agent.update_model.  Raises ImportError when
    torch is not installed.
    """
    try:
        import torch
    except ImportError as exc:  # optional dependency
        raise ImportError("relay.export_torch_mlp needs PyTorch (Debian: python3-torch)") from exc
    module = module.eval()
    buf = io.BytesIO()
    dummy = torch.zeros(1, int(obs_dim), dtype=torch.float32)
    torch.onnx.export(module, dummy, buf, input_names=["obs"], output_names=["out"],
                      dynamic_axes={"obs": {0: "batch"}, "out": {0: "batch"}},
                      opset_version=opset, do_constant_folding=True)
    data = buf.getvalue()
    if path is not None:
        with open(path, "wb") as f:
            f.write(data)
    return data
