"""Matrix factorization with biases trained by plain SGD, as in Rendle et al. 2020, Appendix A.

One example at a time, logistic loss, L2 on every touched parameter, m uniform negatives per
positive redrawn every epoch, all examples of an epoch shuffled together. The user vector is
updated in place first and the item update uses the *updated* user vector (the order of the
authors' code). The hot loop -- sampling, shuffling and updates -- is compiled with numba and is
bit-for-bit deterministic for a seed; an opt-in Hogwild mode trades that for threads. It runs
on the CPU only: SGD one example at a time has no useful GPU form (the batched NCF models of
:mod:`ncf_vs_mf.ncf_training` pick a GPU when there is one).

Parameters are stored the way Eq. (2) counts them: row u of ``user`` has d entries, the first
being the user bias p_u1 and the other d-1 the latent factors; likewise for items.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from .data import LeaveOneOutSplit
from .evaluation import SampledEvaluator

# reassociation lets LLVM vectorize the dot product; no 'nnan'/'ninf' so divergence stays visible
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the message names the epoch and the settings."""


@dataclass(frozen=True)
class MFConfig:
    """Hyperparameters of Appendix A.1; defaults are the paper's ML-1M choice at d = 64."""

    dim: int = 64  # embedding dimension d, counting the bias coordinate (d - 1 factors)
    lr: float = 0.002  # SGD learning rate eta
    reg: float = 0.005  # L2 coefficient lambda on embeddings, biases and the global bias
    negatives: int = 8  # m: uniform negatives per positive, redrawn every epoch
    epochs: int = 256
    init_std: float = 0.1  # embeddings ~ N(0, init_std^2); biases start at 0
    seed: int = 0
    dtype: str = "float64"  # "float32" halves memory traffic (see the book for the check)
    threads: int = 1  # 1: deterministic; >1: Hogwild (lock-free, not reproducible)

    def validate(self) -> None:
        """Reject settings that cannot train, before any work is done."""
        problems = []
        if self.dim < 2:
            problems.append(f"dim={self.dim}: need d >= 2 (one bias coordinate + factors)")
        if not self.lr > 0 or not math.isfinite(self.lr):
            problems.append(f"lr={self.lr}: need a finite learning rate > 0")
        if not self.reg >= 0 or not math.isfinite(self.reg):
            problems.append(f"reg={self.reg}: need a finite lambda >= 0")
        if self.negatives < 1:
            problems.append(f"negatives={self.negatives}: need m >= 1")
        if self.epochs < 1:
            problems.append(f"epochs={self.epochs}: need at least 1 epoch")
        if not self.init_std >= 0:
            problems.append(f"init_std={self.init_std}: need >= 0")
        if self.dtype not in ("float32", "float64"):
            problems.append(f"dtype={self.dtype!r}: expected 'float32' or 'float64'")
        if self.threads < 1:
            problems.append(f"threads={self.threads}: need >= 1")
        if problems:
            raise ValueError("invalid matrix factorization settings: " + "; ".join(problems))


@dataclass
class MFModel:
    """Trained parameters: ``user``/``item`` rows are [bias, factors...]; ``global_bias`` b."""

    user: np.ndarray
    item: np.ndarray
    global_bias: float

    def scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """phi_dot of Eq. (2) for paired arrays of users and items."""
        p, q = self.user[users], self.item[items]
        return self.global_bias + p[..., 0] + q[..., 0] + np.sum(p[..., 1:] * q[..., 1:], axis=-1)

    def evaluate(self, evaluator: SampledEvaluator):
        """HR/NDCG of this model under the evaluator's protocol."""
        return evaluator.evaluate_embeddings(
            np.ascontiguousarray(self.user[:, 1:]), np.ascontiguousarray(self.item[:, 1:]),
            user_bias=self.user[:, 0], item_bias=self.item[:, 0], global_bias=self.global_bias)


@dataclass
class TrainingHistory:
    """Per logged epoch: mean training log loss and test metrics (tidy, one row per epoch)."""

    rows: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    updates: int = 0


# ----------------------------------------------------------------------------- compiled core

LOOKAHEAD = 8  # steps prepared early so the memory they touch can be prefetched
PAD = 16  # factor rows are zero-padded to a multiple of this, so loops have no scalar tail


@numba.njit(cache=True, inline="always")
def _next_u64(state):  # pragma: no cover - compiled
    """splitmix64: a small, fast generator whose whole state is one uint64."""
    state[0] += np.uint64(0x9E3779B97F4A7C15)
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def _uniform_int(state, n):  # pragma: no cover - compiled
    """Uniform integer in [0, n), n < 2**32: Lemire's multiply-shift with exact rejection."""
    n64 = np.uint64(n)
    while True:
        m = (_next_u64(state) >> np.uint64(32)) * n64
        low = m & np.uint64(0xFFFFFFFF)
        if low >= n64 or low >= (np.uint64(0x100000000) - n64) % n64:
            return np.int64(m >> np.uint64(32))


@intrinsic
def _prefetch_row(typingctx, matrix, row):
    """Ask the CPU to bring row ``row`` of a C-contiguous 2-D array into cache (no-op result)."""

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        row_index = context.cast(builder, args[1], signature.args[1], types.intp)
        n_cols = cgutils.unpack_tuple(builder, ary.shape, 2)[1]
        item_bytes = context.get_abi_sizeof(context.get_data_type(signature.args[0].dtype))
        row_bytes = builder.mul(n_cols, context.get_constant(types.intp, item_bytes))
        start = builder.add(builder.ptrtoint(ary.data, cgutils.intp_t),
                            builder.mul(row_index, row_bytes))
        fnty = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t] + [ir.IntType(32)] * 3)
        prefetch = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        flags = [ir.Constant(ir.IntType(32), v) for v in (1, 3, 1)]  # write, keep, data
        with cgutils.for_range_slice(builder, context.get_constant(types.intp, 0), row_bytes,
                                     context.get_constant(types.intp, 64)) as (offset, _):
            address = builder.inttoptr(builder.add(start, offset), cgutils.voidptr_t)
            builder.call(prefetch, [address] + flags)
        return context.get_dummy_value()

    return types.void(matrix, row), codegen


@numba.njit(cache=True)
def _shuffle(order, state):  # pragma: no cover - compiled
    """Fisher-Yates shuffle in place, drawing swap partners LOOKAHEAD steps early.

    The draws come in the same sequence as in the textbook loop (so the permutation is the
    same); drawing early lets the kernel prefetch the random element it will swap with.
    """
    top = order.shape[0] - 1
    rows = order.reshape((order.shape[0], 1))
    partner = np.empty(LOOKAHEAD, np.int64)
    for k in range(min(LOOKAHEAD, top)):
        partner[k] = _uniform_int(state, top - k + 1)
    for k in range(top):
        i, j = top - k, partner[k % LOOKAHEAD]
        if k + LOOKAHEAD < top:
            partner[k % LOOKAHEAD] = _uniform_int(state, i - LOOKAHEAD + 1)
            _prefetch_row(rows, partner[k % LOOKAHEAD])
        order[i], order[j] = order[j], order[i]


@numba.njit(cache=True, fastmath=FASTMATH, inline="always")
def _dot(P, Q, u, i):  # pragma: no cover - compiled
    """Factor part of the score, <p_u, q_i> over the (zero-padded) latent coordinates."""
    s = P.dtype.type(0.0)
    for f in range(P.shape[1]):
        s += P[u, f] * Q[i, f]
    return s


@numba.njit(cache=True, fastmath=FASTMATH, inline="always")
def _update_factors(P, Q, u, i, step, shrink):  # pragma: no cover - compiled
    """Eqs. (10)-(11): p_u first, then q_i with the *updated* p_u.

    The item update at coordinate f needs only the updated user coordinate f, so both are
    updated in one loop -- the same arithmetic as updating the whole user vector first.
    """
    for f in range(P.shape[1]):
        p = shrink * P[u, f] - step * Q[i, f]
        Q[i, f] = shrink * Q[i, f] - step * p
        P[u, f] = p


def encode_examples(users: np.ndarray, items: np.ndarray, negatives: int,
                    n_items: int) -> tuple[np.ndarray, int]:
    """One integer per example, (user << item_bits) | item: each positive and m negative slots.

    A negative slot carries the all-ones item marker (never a valid item); its item is drawn
    when it is reached. Shuffling this array shuffles positives and negatives together, and
    reading it in order is sequential. int32 when the ids fit (ML-1M, Pinterest), which halves
    the memory traffic of the shuffle. Returns the examples and ``item_bits``.
    """
    item_bits = max(1, int(n_items).bit_length())
    user_bits = max(1, int(users.max(initial=0)).bit_length())
    dtype = np.int32 if user_bits + item_bits <= 31 else np.int64
    marker = (1 << item_bits) - 1
    shifted = users.astype(dtype) << dtype(item_bits)
    slots = np.repeat(shifted | dtype(marker), negatives)
    return np.concatenate([shifted | items.astype(dtype), slots]), item_bits


@numba.njit(cache=True, inline="always")
def _decode(example, state, n_items, item_bits):  # pragma: no cover - compiled
    """(user, item, label) of an encoded example, drawing the item of a negative."""
    marker = (np.int64(1) << item_bits) - 1
    item = np.int64(example) & marker
    if item == marker:
        return np.int64(example) >> item_bits, _uniform_int(state, n_items), 0.0
    return np.int64(example) >> item_bits, item, 1.0


@numba.njit(cache=True, fastmath=FASTMATH)
def _run_block(P, Q, bu, bi, b, examples, start, stop, n_items, item_bits, lr, reg, state,
               want_loss):  # pragma: no cover - compiled
    """Plain sequential SGD (Eqs. 9-12) over examples[start:stop]; returns the summed loss.

    Two reorderings that leave every result unchanged make it fast: each example is decoded
    LOOKAHEAD steps early (negatives' items are drawn i.i.d. uniformly as they are decoded, the
    same as drawing them before the shuffle), so the rows it touches can be prefetched; and the
    next example's dot product is computed *before* this example's factor update when the two
    share neither user nor item (the update cannot change it), which takes the dot product off
    the chain of dependent steps. Without ``want_loss`` the sum of scores is returned instead:
    it is cheaper and still turns NaN/inf when training diverges.
    """
    ring_u = np.empty(LOOKAHEAD, np.int64)
    ring_i = np.empty(LOOKAHEAD, np.int64)
    ring_y = np.empty(LOOKAHEAD, P.dtype)
    for k in range(start, min(stop, start + LOOKAHEAD)):
        ring_u[k % LOOKAHEAD], ring_i[k % LOOKAHEAD], ring_y[k % LOOKAHEAD] = _decode(
            examples[k], state, n_items, item_bits)
    total = 0.0
    one = P.dtype.type(1.0)  # typed constants keep the float32 kernel in float32 throughout
    shrink = one - lr * reg
    dot = one - one
    if start < stop:
        dot = _dot(P, Q, ring_u[start % LOOKAHEAD], ring_i[start % LOOKAHEAD])
    for k in range(start, stop):
        slot = k % LOOKAHEAD
        u, i, y = ring_u[slot], ring_i[slot], ring_y[slot]
        if k + LOOKAHEAD < stop:
            ring_u[slot], ring_i[slot], ring_y[slot] = _decode(examples[k + LOOKAHEAD], state,
                                                               n_items, item_bits)
            _prefetch_row(P, ring_u[slot])
            _prefetch_row(Q, ring_i[slot])
        s = b[0] + bu[u] + bi[i] + dot
        e = math.exp(-abs(s))
        sig = one / (one + e) if s >= 0 else e / (one + e)
        step = lr * (sig - y)  # lr times the gradient of the log loss with respect to s
        bu[u] = shrink * bu[u] - step
        bi[i] = shrink * bi[i] - step
        b[0] = shrink * b[0] - step
        following = (k + 1) % LOOKAHEAD
        u_next, i_next = ring_u[following], ring_i[following]
        if k + 1 < stop and u_next != u and i_next != i:
            dot = _dot(P, Q, u_next, i_next)
            _update_factors(P, Q, u, i, step, shrink)
        else:
            _update_factors(P, Q, u, i, step, shrink)
            if k + 1 < stop:
                dot = _dot(P, Q, u_next, i_next)
        total += (math.log1p(e) + max(s, 0.0) - y * s) if want_loss else s
    return total


@numba.njit(cache=True)
def _epoch(P, Q, bu, bi, b, examples, n_items, item_bits, lr, reg, state,
           want_loss):  # pragma: no cover - compiled
    """One deterministic epoch: shuffle all examples together, then SGD through them."""
    _shuffle(examples, state)
    return _run_block(P, Q, bu, bi, b, examples, 0, examples.shape[0], n_items, item_bits, lr,
                      reg, state, want_loss) / examples.shape[0]


@numba.njit(cache=True, parallel=True)
def _epoch_hogwild(P, Q, bu, bi, b, examples, n_items, item_bits, lr, reg, states,
                   want_loss):  # pragma: no cover - compiled
    """Hogwild epoch: the shuffled examples cut into one block per thread, updated lock-free."""
    _shuffle(examples, states[0:1])
    threads, n = states.shape[0], examples.shape[0]
    totals = np.zeros(threads)
    for t in numba.prange(threads):
        totals[t] = _run_block(P, Q, bu, bi, b, examples, t * n // threads,
                               (t + 1) * n // threads, n_items, item_bits, lr, reg,
                               states[t:t + 1], want_loss)
    return totals.sum() / n


# ----------------------------------------------------------------------------- driver


@dataclass
class _State:
    """Training layout: padded factor matrices and separate biases (what the kernel wants)."""

    P: np.ndarray  # (n_users, padded d-1), zero beyond column d-1
    Q: np.ndarray  # (n_items, padded d-1)
    bu: np.ndarray
    bi: np.ndarray
    b: np.ndarray  # (1,)

    @classmethod
    def initial(cls, n_users: int, n_items: int, config: MFConfig) -> "_State":
        """N(0, init_std^2) factors, zero biases; independent of the padding."""
        rng = np.random.default_rng(config.seed)
        width = -(-(config.dim - 1) // PAD) * PAD
        P = np.zeros((n_users, width), dtype=config.dtype)
        Q = np.zeros((n_items, width), dtype=config.dtype)
        P[:, :config.dim - 1] = rng.normal(0.0, config.init_std, size=(n_users, config.dim - 1))
        Q[:, :config.dim - 1] = rng.normal(0.0, config.init_std, size=(n_items, config.dim - 1))
        zeros = lambda n: np.zeros(n, dtype=config.dtype)  # noqa: E731
        return cls(P, Q, zeros(n_users), zeros(n_items), zeros(1))

    def model(self, dim: int) -> MFModel:
        """The trained parameters in Eq. (2)'s layout: [bias, d-1 factors] per row."""
        user = np.concatenate([self.bu[:, None], self.P[:, :dim - 1]], axis=1)
        item = np.concatenate([self.bi[:, None], self.Q[:, :dim - 1]], axis=1)
        return MFModel(user, item, float(self.b[0]))

    def evaluate(self, evaluator: SampledEvaluator):
        """Metrics straight from the padded layout (zero padding adds nothing to a score)."""
        return evaluator.evaluate_embeddings(self.P, self.Q, self.bu, self.bi, float(self.b[0]))


def _generator_states(seed: int, count: int) -> np.ndarray:
    """Independent splitmix64 states for the kernel, derived from the seed by numpy."""
    return np.random.SeedSequence([seed, 0x5EED]).generate_state(count, dtype=np.uint64)


def train_mf(split: LeaveOneOutSplit, config: MFConfig, eval_every: int = 0,
             evaluator: SampledEvaluator | None = None,
             on_epoch: Callable[[dict], None] | None = None) -> tuple[MFModel, TrainingHistory]:
    """Train MF on ``split`` for ``config.epochs`` epochs and return the last-epoch model.

    Every ``eval_every`` epochs (and after the last) the mean training log loss (data term,
    without the L2 term) and the evaluator's HR/NDCG are logged: one scoring pass, negligible
    next to an epoch. Raises :class:`TrainingDiverged` as soon as an epoch is not finite.
    """
    config.validate()
    evaluator = evaluator or SampledEvaluator(split)
    state = _State.initial(split.n_users, split.n_items, config)
    examples, item_bits = encode_examples(split.train_users, split.train_items,
                                          config.negatives, split.n_items)
    lr, reg = (np.dtype(config.dtype).type(v) for v in (config.lr, config.reg))
    rng_states = _generator_states(config.seed, config.threads)
    history = TrainingHistory()
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        log_now = (eval_every and epoch % eval_every == 0) or epoch == config.epochs
        args = (state.P, state.Q, state.bu, state.bi, state.b, examples, split.n_items, item_bits,
                lr, reg)
        if config.threads == 1:
            value = _epoch(*args, rng_states[:1], bool(log_now))
        else:
            value = _epoch_hogwild(*args, rng_states, bool(log_now))
        history.updates += examples.shape[0]
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"matrix factorization diverged in epoch {epoch} (the loss is not finite); "
                f"settings {asdict(config)}. Lower the learning rate or raise regularization.")
        if log_now:
            row = {"epoch": epoch, "loss": float(value), **state.evaluate(evaluator).as_dict()}
            history.rows.append(row)
            if on_epoch is not None:
                on_epoch(row)
    history.seconds = time.perf_counter() - start
    return state.model(config.dim), history
