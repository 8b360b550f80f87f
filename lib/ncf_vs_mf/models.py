"""Similarity functions (Rendle et al. 2020, Section 2) and the embedding models built on them.

A *similarity* maps a user embedding ``p`` and an item embedding ``q`` (tensors of shape
``(..., d)``) to one score per pair (shape ``(...)``). All similarities here return
**logits**: train them with ``torch.nn.BCEWithLogitsLoss`` (NCF's log loss) or ``MSELoss``
(Section 4's regression) and apply a sigmoid only when a probability is wanted.

======================  ===========  ==================================================
class                   paper        parameters in the similarity itself
======================  ===========  ==================================================
``DotSimilarity``       Eqs. 1-2     the global bias ``b`` (1), or none
``GMFSimilarity``       Eq. 6        ``w`` (d) plus the output bias NCF's Dense layer has
``MLPSimilarity``       Eq. 4        the MLP: about 18 d^2 for hidden [4d, 2d, d]
``NeuMFSimilarity``     Eq. 5        the MLP's hidden layers plus one output layer
======================  ===========  ==================================================

NCF's layer sizes, read from He et al. (2017) Section 4.1 as Rendle et al. (Appendix A.3)
read them: an MLP with *predictive factor* k (the width of its last hidden layer) works on
embeddings of 2k per side (input [p, q] of width 4k) with the three hidden layers
4k -> 2k -> k ("MLP-3"); NeuMF with predictive factor k adds a GMF on k more coordinates,
so its embeddings have 3k coordinates. (The example command in NCF's README,
``--layers [64,32,16,8]``, uses embeddings of 32 = 4k per side with the same hidden layers;
the paper's text and the recasting to d = 2k describe 16 = 2k.)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = [
    "DotSimilarity",
    "GMFSimilarity",
    "MLPSimilarity",
    "NeuMFSimilarity",
    "EmbeddingModel",
    "OutputActivation",
    "SIMILARITIES",
    "paper_hidden",
    "ncf_hidden",
    "ncf_embedding_dim",
    "make_similarity",
    "ncf_model",
    "parameter_count",
    "mlp_weight_count",
    "paper_mlp_parameter_claim",
    "module_parameter_count",
    "predictive_factor_table",
    "parameter_table",
]

OutputActivation = Literal["sigmoid"] | None
SIMILARITIES = ("dot", "gmf", "mlp", "neumf")


def _activate(logits: Tensor, output_activation: OutputActivation) -> Tensor:
    """Apply the optional output activation (None keeps logits, the default everywhere)."""
    if output_activation is None:
        return logits
    if output_activation == "sigmoid":
        return torch.sigmoid(logits)
    raise ValueError(f"unknown output_activation {output_activation!r}; use None or 'sigmoid'")


def _check_dim(name: str, value: int, minimum: int = 1) -> None:
    """Reject non-integer or too small sizes early, with a readable message."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _lecun_uniform_(layer: nn.Linear) -> None:
    """Keras 1 'lecun_uniform' init (U(+-sqrt(3/fan_in))), zero bias: NCF's output layers."""
    limit = math.sqrt(3.0 / layer.in_features)
    nn.init.uniform_(layer.weight, -limit, limit)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def glorot_uniform_(layer: nn.Linear) -> None:
    """Keras 1 default Dense init (Glorot uniform), zero bias: NCF's hidden layers."""
    nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


# --------------------------------------------------------------------------------------
# Layer-size helpers
# --------------------------------------------------------------------------------------

def paper_hidden(h: int) -> list[int]:
    """Hidden sizes [4h, 2h, h] of Rendle et al.'s Section 4 MLP (h = d/2, d or 2d there)."""
    _check_dim("h", h)
    return [4 * h, 2 * h, h]


def ncf_hidden(k: int) -> list[int]:
    """Hidden sizes 4k -> 2k -> k of NCF's MLP-3 with predictive factor k (input [p, q] = 4k).

    This is ``paper_hidden(k)`` on embeddings of d = 2k per side, i.e. h = d/2, the setting
    Rendle et al. attribute to NCF in Section 4.
    """
    return paper_hidden(k)


def ncf_embedding_dim(similarity: str, k: int) -> int:
    """Embedding dimension d per side for NCF's predictive factor k (Appendix A.3 recasting)."""
    _check_dim("k", k)
    factors = {"gmf": 1, "mlp": 2, "neumf": 3}
    if similarity not in factors:
        raise ValueError(f"predictive factors are defined for {sorted(factors)}, not {similarity!r}")
    return factors[similarity] * k


def predictive_factor_table(factors: Sequence[int] = (8, 16, 32, 64)):
    """Appendix A.3 as a table: predictive factor k -> embedding dimension of GMF, MLP, NeuMF."""
    import pandas as pd

    rows = [{"Predictive factor k": k,
             "GMF d = k": ncf_embedding_dim("gmf", k),
             "MLP d = 2k": ncf_embedding_dim("mlp", k),
             "NeuMF d = 3k": ncf_embedding_dim("neumf", k),
             "MLP hidden layers": " → ".join(map(str, ncf_hidden(k)))}
            for k in factors]
    return pd.DataFrame(rows).set_index("Predictive factor k")


# --------------------------------------------------------------------------------------
# Similarity functions
# --------------------------------------------------------------------------------------

class DotSimilarity(nn.Module):
    """phi_dot, Eq. 2: b + p_1 + q_1 + <p[2..d], q[2..d]>; d counts the bias coordinate.

    With ``biases=False`` it is the plain dot product of Eq. 1 and has no parameters. With
    biases the first coordinate of each embedding is that user's / item's bias, so an
    "embedding dimension d" model has d - 1 latent factors (Rendle et al.'s convention),
    and the only parameter of the similarity is the global bias ``b`` (initialised to 0).
    Inputs broadcast, so ``p`` of shape (B, 1, d) against ``q`` of shape (B, C, d) works.
    """

    def __init__(self, biases: bool = True, output_activation: OutputActivation = None):
        super().__init__()
        self.biases = biases
        self.output_activation = output_activation
        self.global_bias = nn.Parameter(torch.zeros(())) if biases else None

    def forward(self, p: Tensor, q: Tensor) -> Tensor:
        if self.global_bias is None:
            logits = (p * q).sum(-1)
        else:
            if p.shape[-1] < 1 or q.shape[-1] < 1:
                raise ValueError("Eq. 2 needs d >= 1 (the bias coordinate)")
            logits = (self.global_bias + p[..., 0] + q[..., 0]
                      + (p[..., 1:] * q[..., 1:]).sum(-1))
        return _activate(logits, self.output_activation)


class GMFSimilarity(nn.Module):
    """phi_GMF, Eq. 6: the logit w^T (p * q) (+ b), a weighted dot product.

    NCF implements ``w`` as a Keras ``Dense(1)`` layer, which also has a bias; ``bias=True``
    (the default) keeps it, ``bias=False`` gives Eq. 6 exactly. Without the bias GMF is a
    dot product with ``w`` folded into one side (see ``fold_into``): it adds parameters but
    no expressiveness (Rendle et al. Section 3.3.3).
    """

    def __init__(self, d: int, bias: bool = True, output_activation: OutputActivation = None):
        super().__init__()
        _check_dim("d", d)
        self.d = d
        self.output_activation = output_activation
        self.output = nn.Linear(d, 1, bias=bias)
        _lecun_uniform_(self.output)

    @property
    def weight(self) -> Tensor:
        """The vector w of Eq. 6, shape (d,)."""
        return self.output.weight[0]

    def forward(self, p: Tensor, q: Tensor) -> Tensor:
        return _activate(self.output(p * q).squeeze(-1), self.output_activation)

    def fold_into(self, p: Tensor) -> Tensor:
        """Return w * p, so that <w * p, q> (+ bias) equals this GMF's logit."""
        return p * self.weight


class MLPSimilarity(nn.Module):
    """phi_MLP, Eq. 4: ReLU MLP on [p, q] (width 2d) with a linear scalar output.

    ``hidden`` lists the hidden-layer widths: ``paper_hidden(h)`` for Section 4,
    ``ncf_hidden(k)`` (with d = 2k) for NCF's MLP-3. Initialisation follows NCF's Keras code
    (Glorot-uniform hidden layers, LeCun-uniform output layer, zero biases).
    """

    def __init__(self, d: int, hidden: Sequence[int], output_activation: OutputActivation = None):
        super().__init__()
        _check_dim("d", d)
        self.d = d
        self.hidden = [int(h) for h in hidden]
        for width in self.hidden:
            _check_dim("hidden width", width)
        self.output_activation = output_activation
        widths = [2 * d, *self.hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        for layer in self.layers:
            glorot_uniform_(layer)
        self.output = nn.Linear(widths[-1], 1)
        _lecun_uniform_(self.output)

    @property
    def out_features(self) -> int:
        """Width of the vector fed to the output layer (the last hidden width, or 2d)."""
        return self.hidden[-1] if self.hidden else 2 * self.d

    def features(self, p: Tensor, q: Tensor) -> Tensor:
        """The last hidden layer's activations for [p, q] (NeuMF's "MLP vector")."""
        p, q = torch.broadcast_tensors(p, q)
        x = torch.cat([p, q], dim=-1)
        for layer in self.layers:
            x = torch.relu(layer(x))
        return x

    def forward(self, p: Tensor, q: Tensor) -> Tensor:
        return _activate(self.output(self.features(p, q)).squeeze(-1), self.output_activation)


class NeuMFSimilarity(nn.Module):
    """phi_NeuMF, Eq. 5, in NCF's form: one output layer on [p_g * q_g, MLP(p_m, q_m)].

    The first ``mlp_dim`` coordinates (j in Eq. 5) feed the MLP, the remaining d - j the GMF.
    NCF concatenates the GMF vector p_g * q_g and the MLP's last hidden layer and applies a
    single ``Dense(1)``; splitting its weights into (w_g, w_m) shows the logit is
    w_g^T (p_g * q_g) + w_m^T MLP(p_m, q_m) + b = GMF logit + MLP logit: Eq. 5's sum taken
    before the sigmoid, with one shared bias.
    """

    def __init__(self, d: int, mlp_dim: int, hidden: Sequence[int],
                 output_activation: OutputActivation = None):
        super().__init__()
        _check_dim("d", d)
        _check_dim("mlp_dim", mlp_dim)
        if mlp_dim >= d:
            raise ValueError(f"mlp_dim ({mlp_dim}) must be smaller than d ({d}) to leave a GMF part")
        self.d = d
        self.mlp_dim = mlp_dim
        self.gmf_dim = d - mlp_dim
        self.output_activation = output_activation
        self.mlp = MLPSimilarity(mlp_dim, hidden)
        del self.mlp.output  # NeuMF's own output layer replaces the MLP's
        self.output = nn.Linear(self.gmf_dim + self.mlp.out_features, 1)
        _lecun_uniform_(self.output)

    @property
    def hidden(self) -> list[int]:
        """Hidden widths of the MLP part."""
        return self.mlp.hidden

    def forward(self, p: Tensor, q: Tensor) -> Tensor:
        j = self.mlp_dim
        gmf_vector = p[..., j:] * q[..., j:]
        mlp_vector = self.mlp.features(p[..., :j], q[..., :j])
        logits = self.output(torch.cat([gmf_vector, mlp_vector], dim=-1)).squeeze(-1)
        return _activate(logits, self.output_activation)

    @classmethod
    def from_pretrained(cls, gmf: GMFSimilarity, mlp: MLPSimilarity, alpha: float = 0.5,
                        output_activation: OutputActivation = None) -> "NeuMFSimilarity":
        """NCF's pre-training init: copy the MLP's layers, output = [alpha w_gmf, (1-alpha) w_mlp].

        The bias becomes alpha b_gmf + (1 - alpha) b_mlp (NCF: 0.5 (b_gmf + b_mlp)), so the new
        logit is exactly alpha * GMF logit + (1 - alpha) * MLP logit on the split embeddings.
        """
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        model = cls(gmf.d + mlp.d, mlp.d, mlp.hidden, output_activation=output_activation)
        with torch.no_grad():
            for target, source in zip(model.mlp.layers, mlp.layers):
                target.weight.copy_(source.weight)
                target.bias.copy_(source.bias)
            model.output.weight.copy_(torch.cat([alpha * gmf.output.weight,
                                                 (1.0 - alpha) * mlp.output.weight], dim=1))
            gmf_bias = gmf.output.bias if gmf.output.bias is not None else torch.zeros(1)
            model.output.bias.copy_(alpha * gmf_bias + (1.0 - alpha) * mlp.output.bias)
        return model


def make_similarity(name: str, d: int, h: int | None = None, *, hidden: Sequence[int] | None = None,
                    mlp_dim: int | None = None, output_activation: OutputActivation = None) -> nn.Module:
    """Build a similarity by name ('dot', 'gmf', 'mlp', 'neumf') with the book's defaults.

    mlp: hidden = ``hidden`` or ``paper_hidden(h)`` with h = d by default (Section 4's h = d).
    neumf: NCF's split for d = 3k: mlp_dim = 2k, hidden = ncf_hidden(k), unless given.
    """
    if name == "dot":
        return DotSimilarity(output_activation=output_activation)
    if name == "gmf":
        return GMFSimilarity(d, output_activation=output_activation)
    if name == "mlp":
        return MLPSimilarity(d, hidden if hidden is not None else paper_hidden(h or d),
                             output_activation=output_activation)
    if name == "neumf":
        mlp_dim, hidden = _neumf_layout(d, h, hidden, mlp_dim)
        return NeuMFSimilarity(d, mlp_dim, hidden, output_activation=output_activation)
    raise ValueError(f"unknown similarity {name!r}; choose from {SIMILARITIES}")


def _neumf_layout(d: int, h: int | None, hidden: Sequence[int] | None,
                  mlp_dim: int | None) -> tuple[int, list[int]]:
    """Default NeuMF split: NCF's d = 3k with an MLP on 2k coordinates and hidden [4k, 2k, k]."""
    if mlp_dim is None:
        if d % 3:
            raise ValueError(f"NCF's NeuMF layout needs d = 3k; give mlp_dim for d = {d}")
        mlp_dim = 2 * d // 3
    if hidden is None:
        hidden = paper_hidden(h) if h is not None else ncf_hidden(max(mlp_dim // 2, 1))
    return mlp_dim, list(hidden)


# --------------------------------------------------------------------------------------
# Full models
# --------------------------------------------------------------------------------------

class EmbeddingModel(nn.Module):
    """User and item embedding tables (free parameters) combined by a similarity.

    ``forward(users, items)`` scores aligned pairs; ``score(users, items)`` scores each user
    against a row of candidate items, for evaluation. Embeddings start from N(0, init_std^2):
    NCF uses 0.01, Rendle et al.'s matrix factorization 0.1.
    """

    def __init__(self, n_users: int, n_items: int, d: int, similarity: nn.Module,
                 init_std: float = 0.01):
        super().__init__()
        _check_dim("n_users", n_users)
        _check_dim("n_items", n_items)
        _check_dim("d", d)
        self.d = d
        self.user_embedding = nn.Embedding(n_users, d)
        self.item_embedding = nn.Embedding(n_items, d)
        nn.init.normal_(self.user_embedding.weight, 0.0, init_std)
        nn.init.normal_(self.item_embedding.weight, 0.0, init_std)
        self.similarity = similarity

    @property
    def n_users(self) -> int:
        return self.user_embedding.num_embeddings

    @property
    def n_items(self) -> int:
        return self.item_embedding.num_embeddings

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        return self.similarity(self.user_embedding(users), self.item_embedding(items))

    @torch.no_grad()
    def score(self, users, items, batch_size: int = 1024) -> Tensor:
        """Logits of shape (n_users, n_candidates) for users (B,) and candidate items (B, C)."""
        users = torch.as_tensor(users, dtype=torch.long)
        items = torch.as_tensor(items, dtype=torch.long)
        if items.ndim != 2 or users.ndim != 1 or items.shape[0] != users.shape[0]:
            raise ValueError(f"need users (B,) and items (B, C); got {tuple(users.shape)} "
                             f"and {tuple(items.shape)}")
        was_training = self.training
        self.eval()
        try:
            chunks = []
            for start in range(0, users.shape[0], batch_size):
                p = self.user_embedding(users[start:start + batch_size]).unsqueeze(1)
                q = self.item_embedding(items[start:start + batch_size])
                chunks.append(self.similarity(p, q))
            return torch.cat(chunks) if chunks else torch.empty(0, items.shape[1])
        finally:
            self.train(was_training)

    @classmethod
    def neumf_from_pretrained(cls, gmf_model: "EmbeddingModel", mlp_model: "EmbeddingModel",
                              alpha: float = 0.5) -> "EmbeddingModel":
        """NeuMF initialised from a trained GMF and MLP model (NCF's pre-training), see
        ``NeuMFSimilarity.from_pretrained``; embeddings are [MLP part, GMF part] per row."""
        if not isinstance(gmf_model.similarity, GMFSimilarity):
            raise TypeError("gmf_model must use a GMFSimilarity")
        if not isinstance(mlp_model.similarity, MLPSimilarity):
            raise TypeError("mlp_model must use an MLPSimilarity")
        if (gmf_model.n_users, gmf_model.n_items) != (mlp_model.n_users, mlp_model.n_items):
            raise ValueError("GMF and MLP models must share users and items")
        similarity = NeuMFSimilarity.from_pretrained(gmf_model.similarity, mlp_model.similarity, alpha)
        model = cls(gmf_model.n_users, gmf_model.n_items, similarity.d, similarity)
        with torch.no_grad():
            model.user_embedding.weight.copy_(torch.cat(
                [mlp_model.user_embedding.weight, gmf_model.user_embedding.weight], dim=1))
            model.item_embedding.weight.copy_(torch.cat(
                [mlp_model.item_embedding.weight, gmf_model.item_embedding.weight], dim=1))
        return model


def ncf_model(name: str, n_users: int, n_items: int, k: int, init_std: float = 0.01) -> EmbeddingModel:
    """NCF's GMF, MLP-3 or NeuMF with predictive factor k (d = k, 2k, 3k), logits out."""
    d = ncf_embedding_dim(name, k)
    if name == "gmf":
        similarity: nn.Module = GMFSimilarity(d)
    elif name == "mlp":
        similarity = MLPSimilarity(d, ncf_hidden(k))
    else:
        similarity = NeuMFSimilarity(d, 2 * k, ncf_hidden(k))
    return EmbeddingModel(n_users, n_items, d, similarity, init_std=init_std)


# --------------------------------------------------------------------------------------
# Parameter counts
# --------------------------------------------------------------------------------------

def module_parameter_count(module: nn.Module) -> int:
    """Number of trainable scalars in a module, sum(p.numel())."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def mlp_weight_count(d: int, hidden: Sequence[int]) -> int:
    """Entries of the hidden layers' weight matrices only, for input [p, q] of width 2d.

    This is what Rendle et al. count in Section 4.1: with hidden [4h, 2h, h] it is
    2d*4h + 4h*2h + 2h*h = 8dh + 10h^2, i.e. exactly 18 d^2 for h = d (1,152 for d = 8).
    """
    widths = [2 * d, *hidden]
    return sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def paper_mlp_parameter_claim(d: int) -> int:
    """The Section 4.1 figure "about 18 d^2" for h = d (d=8: 1,152; 64: 73,728; 256: 1,179,648)."""
    return 18 * d * d


def parameter_count(similarity_name: str, d: int, h: int | None = None, *,
                    hidden: Sequence[int] | None = None, mlp_dim: int | None = None,
                    biases: bool = True) -> int:
    """Closed-form count of a similarity's own parameters (embeddings excluded), as built here.

    dot: 1 (global bias; 0 with ``biases=False``). gmf: d + 1 (w and the Dense bias).
    mlp with hidden [h_1..h_L]: sum of (in*out + out) over layers plus h_L + 1 for the output;
    for [4h, 2h, h] this is 8dh + 10h^2 + 8h + 1 (18 d^2 + 8 d + 1 at h = d).
    neumf: the MLP's hidden layers plus an output layer on (d - j) + h_L inputs.
    """
    _check_dim("d", d)
    if similarity_name == "dot":
        return 1 if biases else 0
    if similarity_name == "gmf":
        return d + (1 if biases else 0)
    if similarity_name == "mlp":
        layers = list(hidden) if hidden is not None else paper_hidden(h or d)
        last = layers[-1] if layers else 2 * d
        return mlp_weight_count(d, layers) + sum(layers) + last + 1
    if similarity_name == "neumf":
        j, layers = _neumf_layout(d, h, hidden, mlp_dim)
        last = layers[-1] if layers else 2 * j
        return mlp_weight_count(j, layers) + sum(layers) + (d - j + last) + 1
    raise ValueError(f"unknown similarity {similarity_name!r}; choose from {SIMILARITIES}")


def parameter_table(dims: Sequence[int] = (8, 64, 256)):
    """Parameters inside each similarity at the given d, next to the paper's 18 d^2 (Section 4.1).

    MLP columns use hidden [4h, 2h, h] and count weights and biases (the paper's 18 d^2 is
    the hidden weight matrices only, ``mlp_weight_count``); NeuMF uses NCF's layout and is
    left empty when d is not a multiple of 3.
    """
    import pandas as pd

    rows = []
    for d in dims:
        rows.append({
            "d": d,
            "dot (Eq. 2)": parameter_count("dot", d),
            "GMF": parameter_count("gmf", d),
            "MLP h = d/2": parameter_count("mlp", d, d // 2) if d % 2 == 0 else None,
            "MLP h = d": parameter_count("mlp", d, d),
            "paper's 18d²": paper_mlp_parameter_claim(d),
            "NeuMF (d = 3k)": parameter_count("neumf", d) if d % 3 == 0 else None,
        })
    return pd.DataFrame(rows).set_index("d")
