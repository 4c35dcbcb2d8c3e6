#!/usr/bin/python3
"""Generate the ONNX fixtures Relay's model tests load (tests/data/model/).

Run with Debian's interpreter: /usr/bin/python3 tools/gen_onnx_fixtures.py
Needs python3-torch, python3-onnx and python3-numpy (apt). The outputs are committed, so CI
does not need PyTorch.

For every fixture NAME it writes:
  NAME.onnx     the model
  NAME.io.txt   line 1: "batch in_dim out_dim"; then batch*in_dim inputs; then batch*out_dim
                expected outputs (one number per line, %.9g)
and fixtures.txt lists the valid fixture names, one per line. Invalid models (that Relay must
reject) are written as bad_*.onnx with the error name expected in bad_fixtures.txt.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "model")
torch.manual_seed(1234)
rng = np.random.default_rng(42)

valid = []
bad = []


def write_io(name, x, y):
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    with open(os.path.join(OUT, name + ".io.txt"), "w") as f:
        f.write("%d %d %d\n" % (x.shape[0], x.reshape(x.shape[0], -1).shape[1], y.shape[1]))
        for v in x.reshape(-1):
            f.write("%.9g\n" % v)
        for v in y.reshape(-1):
            f.write("%.9g\n" % v)


def act_module(name):
    return {"tanh": torch.nn.Tanh(), "relu": torch.nn.ReLU(), "sigmoid": torch.nn.Sigmoid(),
            "softmax": torch.nn.Softmax(dim=-1), "none": torch.nn.Identity()}[name]


def torch_mlp(name, sizes, hidden_act, out_act, opset, batch=7, in_shape=None, flatten=False):
    layers = []
    if flatten:
        layers.append(torch.nn.Flatten())
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        a = hidden_act if i < len(sizes) - 2 else out_act
        if a != "none":
            layers.append(act_module(a))
    net = torch.nn.Sequential(*layers).eval()
    shape = in_shape if in_shape else (sizes[0],)
    x = torch.randn(batch, *shape) * 1.5
    with torch.no_grad():
        y = net(x)
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(net, x[:1], path, opset_version=opset, input_names=["obs"],
                      output_names=["out"], dynamic_axes={"obs": {0: "batch"}, "out": {0: "batch"}})
    write_io(name, x.numpy(), y.numpy())
    valid.append(name)


def np_act(a, v):
    if a == "tanh":
        return np.tanh(v)
    if a == "relu":
        return np.maximum(v, 0)
    if a == "sigmoid":
        return 1.0 / (1.0 + np.exp(-v))
    if a == "softmax":
        e = np.exp(v - v.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return v


def save(model, name):
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT, name + ".onnx"))


def io_info(name, n, batch="batch"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, n])


def matmul_add_model(name, sizes, act, opset):
    """MatMul + Add (+ Identity, Flatten) built with onnx.helper; weights in raw_data."""
    nodes, inits = [], []
    cur = "x"
    nodes.append(helper.make_node("Flatten", ["x"], ["x_flat"], axis=1))
    cur = "x_flat"
    ws = []
    for i in range(len(sizes) - 1):
        w = rng.standard_normal((sizes[i], sizes[i + 1])).astype(np.float32) * 0.4
        b = rng.standard_normal((sizes[i + 1],)).astype(np.float32) * 0.1
        ws.append((w, b))
        inits.append(numpy_helper.from_array(w, "W%d" % i))
        inits.append(numpy_helper.from_array(b, "b%d" % i))
        nodes.append(helper.make_node("MatMul", [cur, "W%d" % i], ["mm%d" % i]))
        nodes.append(helper.make_node("Add", ["mm%d" % i, "b%d" % i], ["add%d" % i]))
        cur = "add%d" % i
        if i < len(sizes) - 2:
            nodes.append(helper.make_node(act[0].upper() + act[1:] if act != "relu" else "Relu",
                                          [cur], ["h%d" % i]))
            cur = "h%d" % i
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    g = helper.make_graph(nodes, name, [io_info("x", sizes[0])], [io_info("y", sizes[-1])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="relay")
    m.ir_version = 8
    save(m, name)
    x = rng.standard_normal((5, sizes[0])).astype(np.float32)
    h = x.astype(np.float64)
    for i, (w, b) in enumerate(ws):
        h = h @ w + b
        if i < len(ws) - 1:
            h = np_act(act, h)
    write_io(name, x, h)
    valid.append(name)


def gemm_attrs_model(name, opset):
    """Gemm with alpha, beta, transB=0, a [1, M] bias, float_data initializers, then Softmax."""
    k, m = 6, 5
    w = rng.standard_normal((k, m)).astype(np.float32)
    c = rng.standard_normal((1, m)).astype(np.float32)
    alpha, beta = 0.5, 2.0
    wt = helper.make_tensor("W", TensorProto.FLOAT, [k, m], w.reshape(-1).tolist(), raw=False)
    ct = helper.make_tensor("C", TensorProto.FLOAT, [1, m], c.reshape(-1).tolist(), raw=False)
    assert len(wt.float_data) == k * m and not wt.raw_data
    nodes = [helper.make_node("Gemm", ["x", "W", "C"], ["g"], alpha=alpha, beta=beta, transA=0,
                              transB=0),
             helper.make_node("Softmax", ["g"], ["y"], axis=1)]
    g = helper.make_graph(nodes, name, [io_info("x", k)], [io_info("y", m)], [wt, ct])
    mdl = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="relay")
    mdl.ir_version = 7
    save(mdl, name)
    x = rng.standard_normal((4, k)).astype(np.float32)
    y = np_act("softmax", alpha * (x.astype(np.float64) @ w) + beta * c)
    write_io(name, x, y)
    valid.append(name)


def bad_model(name, node, expect, opset=13, extra_inits=()):
    g = helper.make_graph([node], name, [io_info("x", 4)], [io_info("y", 4)], list(extra_inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="relay")
    onnx.save(m, os.path.join(OUT, name + ".onnx"))
    bad.append((name, expect))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    torch_mlp("mlp_4_64_64_2_tanh_op17", [4, 64, 64, 2], "tanh", "none", 17)
    torch_mlp("mlp_4_64_64_2_tanh_op11", [4, 64, 64, 2], "tanh", "none", 11)
    torch_mlp("mlp_8_32_16_4_relu_softmax_op13", [8, 32, 16, 4], "relu", "softmax", 13, batch=9)
    torch_mlp("mlp_3_16_1_sigmoid_op11", [3, 16, 1], "sigmoid", "sigmoid", 11, batch=3)
    torch_mlp("mlp_17_40_33_relu_op17", [17, 40, 33], "relu", "tanh", 17, batch=13)
    torch_mlp("mlp_2x3_flatten_24_6_op12", [6, 24, 6], "tanh", "softmax", 12, in_shape=(2, 3),
              flatten=True, batch=5)
    torch_mlp("mlp_8_256_256_4_tanh_op17", [8, 256, 256, 4], "tanh", "none", 17, batch=6)
    matmul_add_model("matmul_add_5_20_3_relu_op17", [5, 20, 3], "relu", 17)
    matmul_add_model("matmul_add_4_9_9_2_sigmoid_op11", [4, 9, 9, 2], "sigmoid", 11)
    gemm_attrs_model("gemm_alpha_beta_float_data_op13", 13)
    gemm_attrs_model("gemm_alpha_beta_float_data_op11", 11)

    bad_model("bad_op_conv", helper.make_node("LeakyRelu", ["x"], ["y"], alpha=0.1),
              "RELAY_EUNSUPPORTED")
    bad_model("bad_attr_softmax", helper.make_node("Relu", ["x"], ["y"], foo=3),
              "RELAY_EUNSUPPORTED")
    bad_model("bad_opset_9", helper.make_node("Relu", ["x"], ["y"]), "RELAY_EUNSUPPORTED",
              opset=9)
    bad_model("bad_undefined_input", helper.make_node("Relu", ["nope"], ["y"]), "RELAY_EFORMAT")

    with open(os.path.join(OUT, "fixtures.txt"), "w") as f:
        for n in valid:
            f.write(n + "\n")
    with open(os.path.join(OUT, "bad_fixtures.txt"), "w") as f:
        for n, e in bad:
            f.write("%s %s\n" % (n, e))
    print("wrote %d fixtures and %d bad models to %s" % (len(valid), len(bad), OUT))


if __name__ == "__main__":
    sys.exit(main())
