#!/usr/bin/env python3
"""Writes all-MiniLM-L6-v2 as an f32 ONNX graph, for the f32 anchor of
`embed_ort.py` (no PyPI package ships the f32 ONNX file, and exporting from
PyTorch would need torch).

The graph is BERT as Hugging Face's `BertModel` computes it (embeddings +
LayerNorm, six post-LN layers with masked softmax attention and exact erf
GELU), built node by node with `onnx.helper` from the model folder's
`model.safetensors`. Its inputs and output are those of the usual export
(`input_ids`, `attention_mask`, `token_type_ids` -> `last_hidden_state`), and
ONNX Runtime fuses it into its own Attention/LayerNorm/Gelu kernels as it
does for an exported model.

    python3 minilm_f32_onnx.py OUT.onnx [--model-dir DIR]
"""

import argparse
import json
import os
import struct

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__" or meta["dtype"] != "F32":
            continue
        a, b = meta["data_offsets"]
        out[name.removeprefix("bert.")] = np.frombuffer(data[a:b], dtype=np.float32).reshape(meta["shape"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--model-dir", default=os.environ.get(
        "KYRO_MODEL_DIR", os.path.expanduser("~/.cache/kyrodb/models/all-MiniLM-L6-v2")))
    args = ap.parse_args()
    w = read_safetensors(os.path.join(args.model_dir, "model.safetensors"))

    inits, nodes = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    counter = [0]

    def node(op, inputs, **attrs):
        counter[0] += 1
        out = f"{op.lower()}_{counter[0]}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def linear(x, prefix):
        wt = const(prefix + ".wT", np.ascontiguousarray(w[prefix + ".weight"].T))
        b = const(prefix + ".b", w[prefix + ".bias"])
        return node("Add", [node("MatMul", [x, wt]), b])

    def layer_norm(x, prefix):
        g = const(prefix + ".g", w[prefix + ".weight"])
        b = const(prefix + ".beta", w[prefix + ".bias"])
        return node("LayerNormalization", [x, g, b], axis=-1, epsilon=1e-12)

    word = const("word", w["embeddings.word_embeddings.weight"])
    pos = const("pos", w["embeddings.position_embeddings.weight"])
    tt = const("tt", w["embeddings.token_type_embeddings.weight"])
    seq_len = node("Gather", [node("Shape", ["input_ids"]), const("one_i", np.array(1, dtype=np.int64))], axis=0)
    positions = node("Range", [const("zero_i", np.array(0, dtype=np.int64)), seq_len, "one_i"])
    x = node("Add", [node("Add", [node("Gather", [word, "input_ids"]), node("Gather", [pos, positions])]),
                     node("Gather", [tt, "token_type_ids"])])
    x = layer_norm(x, "embeddings.LayerNorm")

    # Additive mask [B, 1, 1, S]: 0 for tokens, a large negative for padding.
    maskf = node("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    ext = node("Mul", [node("Sub", [const("one_f", np.array(1.0, dtype=np.float32)), maskf]),
                       const("neg", np.array(-3.4028234663852886e38, dtype=np.float32))])
    ext = node("Unsqueeze", [ext, const("axes12", np.array([1, 2], dtype=np.int64))])
    heads_shape = const("heads_shape", np.array([0, 0, 12, 32], dtype=np.int64))
    hidden_shape = const("hidden_shape", np.array([0, 0, 384], dtype=np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(32.0), dtype=np.float32))
    half = const("half", np.array(0.5, dtype=np.float32))
    rsqrt2 = const("rsqrt2", np.array(1.0 / np.sqrt(2.0), dtype=np.float32))

    for i in range(6):
        p = f"encoder.layer.{i}"
        q = node("Transpose", [node("Reshape", [linear(x, f"{p}.attention.self.query"), heads_shape])], perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(x, f"{p}.attention.self.key"), heads_shape])], perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(x, f"{p}.attention.self.value"), heads_shape])], perm=[0, 2, 1, 3])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k]), scale]), ext])
        probs = node("Softmax", [scores], axis=-1)
        ctx = node("Reshape", [node("Transpose", [node("MatMul", [probs, v])], perm=[0, 2, 1, 3]), hidden_shape])
        x = layer_norm(node("Add", [linear(ctx, f"{p}.attention.output.dense"), x]), f"{p}.attention.output.LayerNorm")
        h = linear(x, f"{p}.intermediate.dense")
        gelu = node("Mul", [node("Mul", [h, half]), node("Add", [node("Erf", [node("Mul", [h, rsqrt2])]), "one_f"])])
        x = layer_norm(node("Add", [linear(gelu, f"{p}.output.dense"), x]), f"{p}.output.LayerNorm")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))

    ids = lambda n: helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2-f32",
        [ids("input_ids"), ids("attention_mask"), ids("token_type_ids")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", 384])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
