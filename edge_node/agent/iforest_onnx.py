"""Compact ONNX export of a fitted scikit-learn IsolationForest (platform side only).

skl2onnx's IsolationForest converter emits ~30 ONNX nodes per tree (path lengths computed
with Gather/Cast/Log/... per tree): about 3,000 nodes for 100 trees, ~1.5 ms per window in
onnxruntime, dominated by per-node overhead. The score only needs, per tree, the leaf a
sample lands in and a constant of that leaf (its depth + the average path length of the
samples left in it - 1), so the whole forest is ONE ``TreeEnsembleRegressor`` summing leaf
constants, followed by four element-wise nodes for ``2 ** (-depth / denominator)`` and the
offset. Output ``scores`` equals ``decision_function`` (checked against scikit-learn at
export time).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _average_path_length(n: float) -> float:
    """c(n) of Liu et al.: the average path length of an unsuccessful BST search."""
    if n <= 1:
        return 0.0
    if n == 2:
        return 1.0
    return 2.0 * (np.log(n - 1.0) + np.euler_gamma) - 2.0 * (n - 1.0) / n


def _float32_at_most(t: float) -> float:
    """The largest float32 <= t. scikit-learn compares float32 inputs with float64
    thresholds; ONNX stores float32 thresholds, and rounding one up would send inputs equal
    to it down the wrong branch. For a float32 x: x <= t exactly when x <= this."""
    f = np.float32(t)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


def isolation_forest_to_onnx(model: Any, n_features: int, opset: int = 17, ml_opset: int = 3) -> Any:
    from onnx import TensorProto, helper

    subsample = model._max_features != n_features
    treeids, nodeids, featureids, values, modes, trues, falses = [], [], [], [], [], [], []
    t_treeids, t_nodeids, t_weights = [], [], []
    for i, est in enumerate(model.estimators_):
        tree = est.tree_
        feats = model.estimators_features_[i] if subsample else None
        leaf_value = model._decision_path_lengths[i] + model._average_path_length_per_tree[i] - 1.0
        for node in range(tree.node_count):
            treeids.append(i)
            nodeids.append(node)
            left, right = int(tree.children_left[node]), int(tree.children_right[node])
            if left == -1:  # a leaf
                featureids.append(0)
                values.append(0.0)
                modes.append("LEAF")
                trues.append(0)
                falses.append(0)
                t_treeids.append(i)
                t_nodeids.append(node)
                t_weights.append(float(leaf_value[node]))
            else:
                f = int(tree.feature[node])
                featureids.append(int(feats[f]) if feats is not None else f)
                values.append(_float32_at_most(float(tree.threshold[node])))
                modes.append("BRANCH_LEQ")
                trues.append(left)
                falses.append(right)
    denominator = len(model.estimators_) * _average_path_length(model._max_samples)
    forest = helper.make_node(
        "TreeEnsembleRegressor", ["X"], ["depth"], domain="ai.onnx.ml", name="forest",
        n_targets=1, aggregate_function="SUM", post_transform="NONE",
        nodes_treeids=treeids, nodes_nodeids=nodeids, nodes_featureids=featureids, nodes_values=values,
        nodes_modes=modes, nodes_truenodeids=trues, nodes_falsenodeids=falses,
        nodes_missing_value_tracks_true=[0] * len(treeids),
        target_ids=[0] * len(t_treeids), target_treeids=t_treeids, target_nodeids=t_nodeids,
        target_weights=t_weights,
    )
    consts = [
        helper.make_tensor("neg_inv_denominator", TensorProto.FLOAT, [], [-1.0 / denominator]),
        helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
        helper.make_tensor("offset", TensorProto.FLOAT, [], [float(model.offset_)]),
    ]
    nodes = [
        forest,
        helper.make_node("Mul", ["depth", "neg_inv_denominator"], ["exponent"]),
        helper.make_node("Pow", ["two", "exponent"], ["anomaly"]),  # Liu's s(x) in (0, 1]
        helper.make_node("Neg", ["anomaly"], ["score_samples"]),
        helper.make_node("Sub", ["score_samples", "offset"], ["scores"]),  # = decision_function
    ]
    graph = helper.make_graph(
        nodes, "isolation_forest",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 1])],
        initializer=consts,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", ml_opset)],
        producer_name="aiot-edge-agent",
    )
