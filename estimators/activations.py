"""Bytes autograd keeps for backward in one training step of a Hugging Face decoder, op by op.

Rather than a closed formula (Korthikanti et al. 2022, arXiv 2205.05198, eq. 1 gives
``s*b*h*(34 + 5*a*s/h)`` bytes per layer for a GPT-2-style fp16 block), this module replays the forward
pass of the transformers 5 implementation of each family (``estimators/data/families.yaml``: its norm variant,
sandwich norms, scaled embedding, attention layout) symbolically and applies autograd's saving rules to every op:

* an op saves an input only when the gradient of *another* input that requires grad needs it
  (``mul`` saves ``other`` for ``self``'s gradient and vice versa; a frozen ``linear`` saves nothing,
  a trainable one saves its input);
* casts to the same dtype, views and ``contiguous()`` on contiguous tensors share storage;
* RMSNorm upcasts to fp32 internally (transformers ``LlamaRMSNorm`` / ``Gemma2RMSNorm``), the loss
  upcasts the logits to fp32 and ``log_softmax`` saves its fp32 output;
* SDPA/flash attention save q, k, v, the output and an fp32 logsumexp (no s x s matrix); eager attention
  saves the fp32 softmax (and its cast copy, and the softcap ``tanh`` output for gemma2);
* peft LoRA casts each adapted layer's input to the adapter dtype (a separate copy per layer when the
  dtypes differ), dropout saves a bool mask; DoRA (peft 0.21) saves the base output, the LoRA output
  and the magnitude scale;
* gradient checkpointing (non-reentrant, as transformers enables it) keeps only each layer's input.

The result is checked against the bytes really saved (``torch.autograd.graph.saved_tensors_hooks``,
unique storages alive at the end of forward, parameters excluded) on tiny models of every family.
Assumption: no padding mask (packed or equal-length batches), so SDPA runs GQA without expanding k/v.
"""

from __future__ import annotations

from dataclasses import dataclass

from estimators.anatomy import (
    Anatomy,
    LinearGroup,
    ParamGroup,
    select_lora_params,
    select_lora_targets,
)
from estimators.families import family
from estimators.setup import TrainingSetup


@dataclass(frozen=True)
class SavedItem:
    """One kind of tensor saved for backward, summed over every place it occurs."""

    group: str  # embedding | layers | final_norm | lm_head | loss
    where: str  # e.g. "self_attn.q_proj"
    what: str
    nbytes: int  # total over all occurrences
    count: int  # occurrences (e.g. number of layers)


@dataclass(frozen=True)
class ActivationTrace:
    """Saved-for-backward bytes of one micro-batch, by group and item."""

    items: tuple[SavedItem, ...]
    total_bytes: int
    by_group: dict[str, int]
    #: bytes one (non-first) decoder layer saves without checkpointing: what a checkpointed
    #: layer re-creates during its recompute in backward
    layer_bytes_no_checkpoint: int
    #: largest tensor an adapted layer creates and frees inside forward (DoRA's identity trick,
    #: a dequantized or upcast weight): a transient on top of the saved bytes
    forward_transient_bytes: int
    family_supported: bool
    #: the loss path's tensors that live only while the loss is computed (forward) and while its gradient reaches
    #: the lm_head input (backward start), on top of the saved bytes (``_loss``)
    loss_forward_transient_bytes: int = 0
    loss_backward_transient_bytes: int = 0

    @property
    def model_bytes(self) -> int:
        """Everything except the loss: embeddings, decoder layers, final norm, lm_head input."""
        return self.total_bytes - self.by_group.get("loss", 0)


class _T:
    """A symbolic tensor: bytes and whether it requires grad. Identity = storage."""

    __slots__ = ("nbytes", "rg")

    def __init__(self, nbytes: int, rg: bool) -> None:
        self.nbytes, self.rg = int(nbytes), bool(rg)


class _Tracer:
    def __init__(self, anatomy: Anatomy, setup: TrainingSetup, nseq: int, seq_len: int, device: str,
                 shared: tuple[_T, ...] = ()) -> None:
        self.a, self.s, self.device = anatomy, setup, device
        self.fam = family(anatomy.model_type)
        self._shared = {id(t) for t in shared}  # tensors that exist already: never counted here
        self.nseq, self.seq = nseq, seq_len
        self.T = nseq * seq_len  # tokens in the micro-batch
        self.dt = setup.compute_bytes
        self.ab = setup.adapter_bytes
        self.attn = setup.resolved_attn(anatomy.model_type)
        self.full = setup.technique == "full"
        self.lora_targets = (
            {g.name for g in select_lora_targets(anatomy, setup.lora_targets)} if setup.adapted else set()
        )
        #: MoE parameter groups peft adapts as parameters (ParamWrapper), with their rank / r
        self.lora_params = dict((g.name, f) for g, f in select_lora_params(anatomy, setup.lora_targets)) \
            if setup.adapted else {}
        #: Liger's RMSNorm and SwiGLU kernels replace transformers' (``loss_kernel == "liger"``)
        self.liger = setup.loss_kernel == "liger"
        self.group = "embedding"
        self.where = ""
        self._saved: dict[int, tuple[str, str, str, _T]] = {}
        self._order: list[int] = []
        self.transient = 0

    # -- bookkeeping -----------------------------------------------------------------------------
    def new(self, nbytes: int, rg: bool) -> _T:
        return _T(nbytes, rg)

    def save(self, t: _T, what: str, where: str | None = None) -> None:
        key = id(t)
        if key not in self._saved and key not in self._shared:
            self._saved[key] = (self.group, where if where is not None else self.where, what, t)
            self._order.append(key)

    def cast(self, x: _T, numel: int, to_bytes: int, from_bytes: int) -> _T:
        return x if to_bytes == from_bytes else self.new(numel * to_bytes, x.rg)

    @property
    def saved_bytes(self) -> int:
        return sum(t.nbytes for _, _, _, t in self._saved.values())

    def saved_items(self) -> list[tuple[str, str, str, int]]:
        return [(g, w, what, t.nbytes) for g, w, what, t in (self._saved[k] for k in self._order)]

    # -- ops -------------------------------------------------------------------------------------
    def rmsnorm(self, x: _T, name: str, gemma: bool, width: int | None = None, rows: int | None = None) -> _T:
        """LlamaRMSNorm / Gemma2RMSNorm (transformers 5) over ``width`` features of ``rows`` rows (default: the
        hidden size of every token; q_norm/k_norm normalise each head)."""
        dt = self.dt
        h = self.a.hidden_size if width is None else width
        T = self.T if rows is None else rows
        self.where = name
        w_rg = self.full
        if self.liger:
            # LigerRMSNorm (liger_kernel/ops/rms_norm.py): one Triton kernel; ctx.save_for_backward(X, W, RSTD)
            # keeps the input itself and an fp32 reciprocal RMS per row, nothing in fp32 per element
            if x.rg or w_rg:
                self.save(x, "input (Liger RMSNorm)")
                self.save(self.new(T * 4, True), "rstd per row (fp32, Liger RMSNorm)")
            return self.new(T * h * dt, x.rg or w_rg)
        x32 = self.cast(x, T * h, 4, dt)  # hidden_states.to(torch.float32) / x.float()
        if x.rg:
            self.save(x32, "fp32 input (pow, mul)")
            self.save(self.new(T * 4, True), "rsqrt of the mean square (fp32)")
        xhat32 = self.new(T * h * 4, x.rg)  # x * rsqrt(...)
        if gemma:
            # output * (1.0 + weight.float()): saves xhat for the weight grad, (1 + w) for the input grad
            if w_rg:
                self.save(xhat32, "normalized input (fp32)")
            if x.rg:
                self.save(self.new(h * 4, True), "1 + weight (fp32)")
            out32 = self.new(T * h * 4, x.rg or w_rg)
            return self.cast(out32, T * h, dt, 4)  # .type_as(x)
        if self.fam.norm == "fp32_weight":  # gpt-oss: (weight * x_hat).to(input_dtype), the product in fp32
            if w_rg:
                self.save(xhat32, "normalized input (fp32)")
            return self.cast(self.new(T * h * 4, x.rg or w_rg), T * h, dt, 4)
        xhat = self.cast(xhat32, T * h, dt, 4)  # .to(input_dtype)
        if w_rg:
            self.save(xhat, f"normalized input ({'fp32' if dt == 4 else 'bf16'})")
        return self.new(T * h * dt, x.rg or w_rg)  # weight * xhat

    def linear(self, x: _T, g: LinearGroup, extra_out_rg: bool = False) -> _T:
        """nn.Linear, frozen or trainable, with peft LoRA/DoRA when the layer is a target."""
        T, dt, ab, s = self.T, self.dt, self.ab, self.s
        self.where = g.name
        lora = g.name in self.lora_targets
        if self.full:
            self.save(x, "input (weight gradient)")
        if self.s.technique == "qlora":
            # bitsandbytes MatMul4Bit keeps no tensor through save_for_backward; backward dequantizes
            self.transient = max(self.transient, g.weight_params * dt)
        y_rg = x.rg or self.full or lora
        if not lora:
            return self.new(T * g.out_features * dt, y_rg)
        base = self.new(T * g.out_features * dt, x.rg or self.full)  # base_layer(x), frozen
        xa = self.cast(x, T * g.in_features, ab, dt)  # peft _cast_input_dtype, one copy per layer
        dropout = s.lora_dropout > 0
        if dropout:
            # CUDA native_dropout saves a bool mask; on CPU dropout is input * noise (noise in input dtype)
            # (the dropout node exists, and keeps its mask, only when its input requires grad)
            mask_bytes = 1 if self.device == "cuda" else ab
            if xa.rg:
                self.save(self.new(T * g.in_features * mask_bytes, True), "lora dropout mask")
            xa = self.new(T * g.in_features * ab, xa.rg)
        if s.technique != "dora":
            self.save(xa, "lora_A input")
            self.save(self.new(T * s.lora_r * ab, True), "lora_B input")
            return self.new(T * g.out_features * dt, True)
        return self._dora(g, x, xa, base, dropout)

    def _dora(self, g: LinearGroup, x: _T, xa: _T, base: _T, dropout: bool) -> _T:
        """peft 0.21 DoraLinearLayer.forward (lora/dora.py)."""
        T, ab, dt, r, mb = self.T, self.ab, self.dt, self.s.lora_r, self.s.magnitude_bytes
        out, inp = g.out_features, g.in_features
        # get_lora_weight: lora_B(lora_A(eye(in))) -- a graph freed before forward ends; weight_norm
        # builds (weight + scaling * lora_weight) in the input dtype: transients of in*in and out*in
        self.transient = max(self.transient, inp * inp * ab + inp * r * ab, 2 * out * inp * ab)
        self.save(self.new(out * mb, False), "DoRA weight norm (detached)")
        mag_scale = self.new(out * mb, True)  # (magnitude / weight_norm).view(1, -1)
        self.save(xa, "lora_A input")
        self.save(self.new(T * r * ab, True), "lora_B input")
        lora_result = self.new(T * out * ab, True)
        if dropout:
            # base_result = F.linear(dropout(x), dequantize(weight).to(x.dtype)): saved for x's grad when
            # it is a new tensor (a 4-bit weight dequantized, or a cast); otherwise it is the parameter
            if xa.rg and (self.s.technique == "qlora" or ab != dt):
                self.save(self.new(out * inp * ab, False), "DoRA base weight (dequantized or cast)")
            base = self.new(T * out * ab, xa.rg)
        minus_one = self.new(out * mb, True)  # mag_norm_scale - 1
        self.save(base, "DoRA base result")
        if base.rg:
            self.save(minus_one, "DoRA magnitude scale - 1")
        self.save(lora_result, "DoRA lora result")
        self.save(mag_scale, "DoRA magnitude scale")
        return self.new(T * out * dt, True)

    def rope(self, t: _T, numel: int, cos: _T, sin: _T) -> _T:
        # q * cos + rotate_half(q) * sin: each mul saves the constant for q's gradient
        if t.rg:
            self.save(cos, "rotary cos", where="rotary_emb")
            self.save(sin, "rotary sin", where="rotary_emb")
        return self.new(numel * self.dt, t.rg)

    def attention(self, x: _T, prefix: str, cos: _T, sin: _T, sliding: bool = False) -> _T:
        a, T, dt = self.a, self.T, self.dt
        L = {g.leaf: g for g in a.linears if g.name.startswith(prefix)}
        if "qkv_proj" in L:  # phi3: q, k, v are views of one projection output
            qkv = self.linear(x, L["qkv_proj"])
            q, k, v = qkv, qkv, qkv
        else:
            q, k, v = self.linear(x, L["q_proj"]), self.linear(x, L["k_proj"]), self.linear(x, L["v_proj"])
        self.where = prefix.rstrip(".")
        if self.fam.qk_norm:  # RMSNorm over each head before the rotary embedding (Qwen3, Gemma 3)
            gemma = self.fam.norm == "gemma"
            q = self.rmsnorm(q, prefix + "q_norm", gemma, a.head_dim, T * a.num_attention_heads)
            k = self.rmsnorm(k, prefix + "k_norm", gemma, a.head_dim, T * a.num_key_value_heads)
            self.where = prefix.rstrip(".")
        q_rot = self.rope(q, T * a.q_dim, cos, sin)
        k_rot = self.rope(k, T * a.kv_dim, cos, sin)
        any_rg = q_rot.rg or k_rot.rg or v.rg
        if self.attn in ("sdpa", "flash"):
            out = self.new(T * a.q_dim * dt, any_rg)
            key, value, kv_what = k_rot, v, ""
            # a sliding-window layer longer than its window reaches SDPA with a mask (flash takes the window as an
            # argument): transformers then repeats k/v to every head (integrations/sdpa_attention.py use_gqa_in_sdpa)
            # and torch turns the boolean mask into an additive one in the compute dtype, which the kernel saves
            masked = self.attn == "sdpa" and sliding and a.sliding_window is not None and self.seq > a.sliding_window
            if masked and a.num_attention_heads != a.num_key_value_heads:
                key, value = self.new(T * a.q_dim * dt, k_rot.rg), self.new(T * a.q_dim * dt, v.rg)
                kv_what = " (repeated for GQA: masked SDPA)"
            if any_rg:
                for t, what in ((q_rot, "query"), (key, "key" + kv_what), (value, "value" + kv_what),
                                (out, "output")):
                    self.save(t, f"attention {what}")
                if masked:
                    self.save(self.new(self.nseq * self.seq * self.seq * dt, False), "sliding-window mask (additive)")
                self.save(self.new(self.nseq * a.num_attention_heads * self.seq * 4, True), "attention logsumexp (fp32)")
            # the kernel's output follows the query's strides (empty_like): llama-style rope keeps the
            # (b, s, h, d) layout of the projection, so transpose(1, 2).contiguous() is free; phi3's
            # rope ends in torch.cat, a contiguous (b, h, s, d) query, and the transpose copies
            attn_out = self.new(out.nbytes, out.rg) if self.fam.attention_copy else out
        else:
            attn_out = self._eager(q_rot, k_rot, v)
        return self.linear(attn_out, L["o_proj"])

    def _eager(self, q: _T, k: _T, v: _T) -> _T:
        a, T, dt = self.a, self.T, self.dt
        n_rep = a.num_attention_heads // a.num_key_value_heads
        k_rep = k if n_rep == 1 else self.new(T * a.q_dim * dt, k.rg)  # repeat_kv copies
        v_rep = v if n_rep == 1 else self.new(T * a.q_dim * dt, v.rg)
        square = self.nseq * a.num_attention_heads * self.seq * self.seq
        rg = q.rg or k_rep.rg
        if k_rep.rg:
            self.save(q, "attention query")
        if q.rg:
            self.save(k_rep, "attention key (repeated for GQA)" if n_rep > 1 else "attention key")
        if self.fam.attention_sinks:
            # gpt-oss: cat([scores, sink]) - max (saves the argmax), softmax in the compute dtype (saves its
            # output, one column wider), the sink column sliced off: the slice is what the value matmul saves
            probs = self.new(self.nseq * a.num_attention_heads * self.seq * (self.seq + 1) * dt, rg)
            if rg:
                self.save(self.new(self.nseq * a.num_attention_heads * self.seq * 8, False),
                          "max over scores and sink (int64 indices)")
                self.save(probs, "softmax output with the sink column")
            if probs.rg:
                self.save(v_rep, "attention value (repeated for GQA)" if n_rep > 1 else "attention value")
            out = self.new(T * a.q_dim * dt, probs.rg or v_rep.rg)
            return self.new(T * a.q_dim * dt, out.rg)  # transpose(1, 2).contiguous()
        scores = self.new(square * dt, rg)
        if a.attn_logit_softcapping:
            scores = self.new(square * dt, rg)
            if rg:
                self.save(scores, "softcap tanh output")
        probs32 = self.new(square * 4, rg)  # softmax(..., dtype=float32)
        if rg:
            self.save(probs32, "softmax output (fp32)")
        probs = self.cast(probs32, square, dt, 4)  # .to(query.dtype); dropout p=0 is the identity
        if v_rep.rg:
            self.save(probs, "attention probabilities")
        if probs.rg:
            self.save(v_rep, "attention value (repeated for GQA)" if n_rep > 1 else "attention value")
        out = self.new(T * a.q_dim * dt, probs.rg or v_rep.rg)
        return self.new(T * a.q_dim * dt, out.rg)  # transpose(1, 2).contiguous()

    def act(self, g: _T, numel: int) -> _T:
        if g.rg:
            self.save(g, "activation input")
        return self.new(numel * self.dt, g.rg)

    def param_matmul(self, x: _T, g: ParamGroup, rows: int, where: str) -> _T:
        """x @ a bare weight (router, or the experts through grouped_mm): the input is saved when the weight
        needs a gradient (full fine-tuning, or peft's merged weight W + s * B @ A (ParamWrapper), which the matmul
        saves too, next to the casts of the two factors to the weight's dtype)."""
        T, dt = rows, self.dt
        self.where = where
        factor = self.lora_params.get(g.name, 0)
        w_rg = self.full or bool(factor)
        if w_rg:
            self.save(x, "input (weight gradient)")
        if factor:
            rank = self.s.lora_r * factor * g.experts
            merged = self.new(g.weight_params * dt, True)
            self.save(merged, "merged weight W + s*B@A (peft ParamWrapper)")
            if g.experts > 1 and self.ab != dt:  # baddbmm over experts: the factors cast to the weight dtype
                self.save(self.new(rank * g.out_features * dt, True), "lora_B cast to the weight dtype")
                self.save(self.new(rank * g.in_features * dt, True), "lora_A cast to the weight dtype")
        return self.new(T * g.out_features * dt, x.rg or w_rg)

    def moe(self, x: _T, prefix: str) -> _T:
        """A sparse MoE block of transformers 5: top-k router, then integrations/moe.py
        grouped_mm_experts_forward over the T*k (token, expert) pairs sorted by expert. What it saves depends on
        T*k only, not on how evenly the router spreads the tokens (random weights route unevenly; the bytes are
        the same)."""
        a, T, dt, k = self.a, self.T, self.dt, self.a.experts_per_token
        S = T * k
        router = next(g for g in a.params if not g.routed and g.name.startswith(prefix))
        experts = {g.leaf: g for g in a.params if g.routed and g.name.startswith(prefix)}
        gate_up, down = experts["gate_up_proj"], experts["down_proj"]
        rname = router.name.rsplit(".", 1)[0]
        logits = self.param_matmul(x, router, T, rname)
        rg = logits.rg
        if self.fam.attention_sinks:  # gpt-oss: top-k of the logits, softmax over the k in the compute dtype
            if rg:
                self.save(self.new(S * 8, False), "router top-k indices (int64)")
                self.save(self.new(S * dt, True), "router softmax over the top-k")
        else:  # softmax in fp32 over every expert, top-k, renormalised, cast to the compute dtype
            if rg:
                self.save(self.new(T * router.out_features * 4, True), "router softmax (fp32)")
                self.save(self.new(S * 8, False), "router top-k indices (int64)")
                self.save(self.new(T * 4, True), "router top-k sum (fp32)")
                self.save(self.new(S * 4, True), "router top-k probabilities (fp32)")
        self.where = prefix + "experts"
        if rg or x.rg:
            self.save(self.new(S * 8, False), "token index per (token, expert) pair (int64)")
        if rg:
            self.save(self.new(S * 8, False), "routing-weight permutation (int64)")
        offsets = self.new(router.out_features * 4, False)
        xs = self.new(S * a.hidden_size * dt, x.rg)  # hidden_states[perm // k]
        grad_w = self.full or bool(self.lora_params.get(gate_up.name))
        if grad_w or self.lora_params.get(down.name):
            self.save(offsets, "expert offsets (int32)")
        h = self.param_matmul(xs, gate_up, S, prefix + "experts.gate_up_proj")
        if gate_up.bias_params and self.full:
            self.save(self.new(S * 8, False), "expert id per pair (int64, bias gather)")
        I = gate_up.out_features // 2
        self.where = prefix + "experts"
        if self.fam.attention_sinks:  # gpt-oss clamped SwiGLU on interleaved gate/up columns
            if h.rg:
                self.save(h, "gate/up projection output (clamp)")
                for what in ("clamped gate", "sigmoid output", "up + 1", "gate * sigmoid"):
                    self.save(self.new(S * I * dt, True), what)
        elif h.rg:
            self.save(h, "gate/up projection output (activation input and up)")
            self.save(self.new(S * I * dt, True), "activation output")
        prod = self.new(S * I * dt, h.rg)
        o = self.param_matmul(prod, down, S, prefix + "experts.down_proj")
        self.where = prefix + "experts"
        if o.rg or rg:
            if rg:
                self.save(o, "expert output (routing-weight gradient)")
            if o.rg:
                self.save(self.new(S * dt, rg), "routing weights per pair")
            self.save(self.new(S * 8, False), "inverse permutation (int64)")
        return self.new(T * a.hidden_size * dt, o.rg or rg)

    def mlp(self, x: _T, prefix: str) -> _T:
        if self.a.is_moe:
            return self.moe(x, prefix)
        T, i = self.T, self.a.intermediate_size
        L = {g.leaf: g for g in self.a.linears if g.name.startswith(prefix)}
        if self.liger:
            # LigerSiLUMulFunction / LigerGELUMulFunction (liger_kernel/ops/swiglu.py, geglu.py): act(gate) * up in
            # one kernel, ctx.save_for_backward(a, b); the activation is recomputed in backward. Phi-3's fused
            # gate_up output is split and made contiguous first (two new tensors)
            if "gate_up_proj" in L:
                gu = self.linear(x, L["gate_up_proj"])
                gate, up = self.new(T * i * self.dt, gu.rg), self.new(T * i * self.dt, gu.rg)
            else:
                gate, up = self.linear(x, L["gate_proj"]), self.linear(x, L["up_proj"])
            self.where = prefix.rstrip(".")
            if gate.rg or up.rg:
                self.save(gate, "gate projection output (Liger SwiGLU)")
                self.save(up, "up projection output (Liger SwiGLU)")
            return self.linear(self.new(T * i * self.dt, gate.rg or up.rg), L["down_proj"])
        if "gate_up_proj" in L:  # phi3
            gu = self.linear(x, L["gate_up_proj"])
            self.where = prefix.rstrip(".")
            act = self.act(gu, T * i)  # gate is a view of gate_up's output
            up = gu
        else:
            gate, up = self.linear(x, L["gate_proj"]), self.linear(x, L["up_proj"])
            self.where = prefix.rstrip(".")
            act = self.act(gate, T * i)
        if up.rg:
            self.save(act, "activation output (gate * up)")
        if act.rg:
            self.save(up, "up projection output")
        prod = self.new(T * i * self.dt, act.rg or up.rg)
        return self.linear(prod, L["down_proj"])

    # -- the model -------------------------------------------------------------------------------
    def layer(self, x: _T, cos: _T, sin: _T, sliding: bool = False) -> _T:
        gemma, sandwich = self.fam.norm == "gemma", self.fam.sandwich_norms
        h = self.rmsnorm(x, "input_layernorm", gemma)
        o = self.attention(h, "self_attn.", cos, sin, sliding)
        if sandwich:
            o = self.rmsnorm(o, "post_attention_layernorm", gemma)
        x = self.new(self.T * self.a.hidden_size * self.dt, x.rg or o.rg)
        h = self.rmsnorm(x, "pre_feedforward_layernorm" if sandwich else "post_attention_layernorm", gemma)
        m = self.mlp(h, "mlp.")
        if sandwich:
            m = self.rmsnorm(m, "post_feedforward_layernorm", gemma)
        return self.new(self.T * self.a.hidden_size * self.dt, x.rg or m.rg)


def trace_activations(
    anatomy: Anatomy, setup: TrainingSetup, nseq: int | None = None, device: str = "cuda"
) -> ActivationTrace:
    """Saved-for-backward bytes of one micro-batch of ``setup`` on ``anatomy``'s architecture.

    ``nseq`` defaults to the sequences one forward pass sees (``micro_batch``, doubled for DPO/ORPO).
    ``device`` is "cuda" (what estimates are for) or "cpu" (where the tests measure); they differ only in
    the dtype of dropout masks.
    """
    if device not in ("cuda", "cpu"):
        raise ValueError(f"device must be cuda or cpu, got {device!r}")
    nseq = setup.sequences_per_micro_batch if nseq is None else nseq
    a, s = anatomy, setup
    if s.loss_kernel == "liger" and not family(a.model_type).liger:
        from estimators.errors import EstimateError

        raise EstimateError(f"loss_kernel liger: Liger-Kernel has no kernels for model_type {a.model_type}; use "
                            "standard, chunked or cce")
    tr = _Tracer(a, s, nseq, s.seq_len, device)
    T, h, dt, V = tr.T, a.hidden_size, tr.dt, a.vocab_size
    gc = s.gradient_checkpointing
    fam = family(a.model_type)
    gemma = fam.norm == "gemma"

    # embedding: a trainable table saves the indices; peft models under checkpointing get
    # enable_input_require_grads, so the embedding output requires grad
    tr.group, tr.where = "embedding", "embed_tokens"
    if tr.full:
        tr.save(tr.new(T * 8, False), "token ids (int64)")
    if fam.scaled_embedding and tr.full:  # Gemma2TextScaledWordEmbedding: lookup * embed_scale (a scalar buffer)
        tr.save(tr.new(dt, False), "embedding scale")
    # (enable_input_require_grads marks the embedding module's output, after the scale)
    # under AMP the embedding runs in fp32 (autocast casts matmul inputs only) and so does the residual stream
    res = 4 if s.amp else dt
    x = tr.new(T * h * res, tr.full or gc)
    # cos/sin of (seq, head_dim), or of half of it where the family rotates the two halves (gpt-oss)
    rope_bytes = s.seq_len * a.head_dim * dt // (2 if fam.half_rotary else 1)
    cos, sin = tr.new(rope_bytes, False), tr.new(rope_bytes, False)
    # Gemma 3 rotates its sliding-window layers with a rotary embedding of their own (rope_local_base_freq)
    mixed = 0 < a.sliding_layers < a.num_layers
    local = (tr.new(rope_bytes, False), tr.new(rope_bytes, False)) if fam.local_rope and mixed else (cos, sin)

    tr.group = "layers"
    for i in range(a.num_layers):
        if gc:
            tr.where = "checkpointed layer"
            tr.save(x, "layer input (kept by checkpointing)")
            x = tr.new(T * h * res, True)
        else:
            sliding = i < a.sliding_layers  # the order of the layer types changes no sum
            x = tr.layer(x, *(local if sliding else (cos, sin)), sliding=sliding)
    # one decoder layer whose input requires grad, traced alone: what checkpointing recomputes in
    # backward (cos/sin already exist), and the size of a layer's activations for the peak model; the larger of
    # a sliding-window and a full-attention layer where the model has both
    kinds = [k for k, n in ((True, a.sliding_layers), (False, a.num_layers - a.sliding_layers)) if n]
    ones = []
    for sliding in kinds:
        one = _Tracer(a, s, nseq, s.seq_len, device, shared=(cos, sin, *local))
        one.group = "layers"
        one.layer(one.new(T * h * dt, True), *(local if sliding else (cos, sin)), sliding=sliding)
        ones.append(one)
    one = max(ones, key=lambda t: t.saved_bytes)
    tr.transient = max(tr.transient, *(o.transient for o in ones))

    tr.group = "final_norm"
    x = tr.rmsnorm(x, "norm", gemma)
    tr.group, tr.where = "lm_head", "lm_head"
    lm_trainable = tr.full  # a tied lm_head shares the (trainable) embedding
    loss_fwd = loss_bwd = 0
    if s.loss_kernel in ("liger", "cce"):
        tr.group = tr.where = "loss"
        loss_fwd, loss_bwd = _fused_linear_loss(tr, s, x, lm_trainable)
    else:
        if lm_trainable:
            tr.save(x, "input (weight gradient)")
        logits = tr.new(T * V * dt, x.rg or lm_trainable)
        tr.group = "loss"
        tr.where = "loss"
        if a.final_logit_softcapping:
            logits = tr.new(T * V * dt, logits.rg)  # logits / cap
            logits = tr.new(T * V * dt, logits.rg)  # tanh
            tr.save(logits, "final softcap tanh output")
            logits = tr.new(T * V * dt, logits.rg)  # * cap
        loss_fwd, loss_bwd = _loss(tr, s, logits, T, V, dt)

    items: dict[tuple[str, str, str], list[int]] = {}
    for g, w, what, nb in tr.saved_items():
        entry = items.setdefault((g, w, what), [0, 0])
        entry[0] += nb
        entry[1] += 1
    out_items = tuple(SavedItem(g, w, what, nb, c) for (g, w, what), (nb, c) in items.items())
    by_group: dict[str, int] = {}
    for it in out_items:
        by_group[it.group] = by_group.get(it.group, 0) + it.nbytes
    return ActivationTrace(
        items=out_items,
        total_bytes=sum(it.nbytes for it in out_items),
        by_group=by_group,
        layer_bytes_no_checkpoint=one.saved_bytes,
        forward_transient_bytes=tr.transient,
        family_supported=fam.verified,
        loss_forward_transient_bytes=loss_fwd,
        loss_backward_transient_bytes=loss_bwd,
    )


def _loss(tr: _Tracer, s: TrainingSetup, logits: _T, T: int, V: int, dt: int) -> tuple[int, int]:
    """The loss on materialised logits; returns (forward, backward-start) transient bytes beyond what it saves."""
    if s.loss_kernel == "chunked":
        # torchtune CEWithChunkedOutputLoss (torchtune/modules/loss/ce_chunked_output_loss.py) under torch.compile:
        # the lm_head output comes in CHUNKS chunks of bf16 logits, each chunk upcast and reduced by a compiled
        # cross-entropy whose backward keeps its bf16 input and an fp32 logsumexp per token (recomputing the
        # softmax); one chunk's fp32 upcast exists at a time, and in backward one chunk's logit gradient
        tr.save(logits, "logits (bf16, kept by the compiled chunked loss)")
        tr.save(tr.new(T * 4, True), "logsumexp per token (fp32)")
        tr.save(tr.new(T * 8, False), "labels (int64)")
        chunk = -(-T // CHUNKED_LOSS_CHUNKS)
        return chunk * V * 4, chunk * V * (4 + dt)
    # transformers' loss keeps the logits (compute dtype) and their fp32 upcast alive while it runs, next to what it
    # saves; the gradient reaching the logits is fp32 (log_softmax_backward) and is cast back: two fp32 T x V tensors
    fwd, bwd = T * V * dt + (T * V * 4 if dt != 4 else 0), 2 * T * V * 4
    if s.objective in ("dpo", "kto"):
        # TRL's selective_log_softmax: row-wise log_softmax in the logits dtype, gathered per token
        tr.save(tr.new(T * V * dt, True), "per-row log_softmax output")
        tr.save(tr.new(T * 8, False), "labels (int64)")
        return fwd, bwd
    # transformers ForCausalLMLoss: logits.float(), cross_entropy = log_softmax + nll_loss
    tr.save(tr.new(T * V * 4, True), "log_softmax output (fp32)")
    # labels are padded by one ignore_index then sliced [..., 1:]; with one sequence the slice is already
    # contiguous, so the saved target keeps the padded storage (s + 1 elements)
    tr.save(tr.new((T + (1 if tr.nseq == 1 else 0)) * 8, False), "shifted labels (int64)")
    tr.save(tr.new(4, False), "nll total weight")
    return fwd, bwd


#: torchtune's CEWithChunkedOutputLoss default ``num_output_chunks``
CHUNKED_LOSS_CHUNKS = 8


def liger_chunk_rows(T: int, V: int, h: int) -> int:
    """Rows of one logits chunk in Liger's fused linear cross-entropy (ops/fused_linear_cross_entropy.py):
    inc_factor = ceil(V / H), chunk = next_power_of_2(ceil(BT / inc_factor)), at most BT: about BT x H elements."""
    inc = -(-V // h)
    rows = -(-T // inc)
    return min(1 << (rows - 1).bit_length(), T)


def _fused_linear_loss(tr: _Tracer, s: TrainingSetup, x: _T, lm_trainable: bool) -> tuple[int, int]:
    """lm_head and loss in one op: no T x V tensor outlives a chunk. Returns (forward, backward-start) transients.

    * Liger (LigerFusedLinearCrossEntropyFunction, liger_kernel/ops/fused_linear_cross_entropy.py): forward loops
      over chunks of ``liger_chunk_rows`` tokens, computes each chunk's logits in the input dtype, overwrites them
      with their gradient (liger_cross_entropy_kernel) and accumulates grad_input (T x H, zeros_like input) and,
      when the lm_head trains, grad_weight (V x H in the weight dtype) right there; it saves those two, and
      backward only scales them. loss_1d is fp32 per token.
    * Cut Cross-Entropy (apple/ml-cross-entropy, cut_cross_entropy/cce.py): forward computes an fp32 logsumexp per
      token blockwise and saves it with the hidden states and the classifier; backward recomputes logits block by
      block and writes the hidden-state gradient (T x H) and, when the lm_head trains, its gradient (V x H).
    """
    a, T, dt = tr.a, tr.T, tr.dt
    V, h = a.vocab_size, a.hidden_size
    tr.save(tr.new(T * 8, False), "labels (int64)")
    if s.loss_kernel == "liger":
        tr.save(tr.new(T * h * dt, True), "grad_input (computed in forward, Liger)")
        if lm_trainable:
            tr.save(tr.new(V * h * dt, True), "lm_head grad_weight (computed in forward, Liger)")
        chunk = liger_chunk_rows(T, V, h)
        return chunk * V * dt + T * 4, 0
    tr.save(x, "hidden states (Cut Cross-Entropy)")
    tr.save(tr.new(T * 4, True), "logsumexp per token (fp32, Cut Cross-Entropy)")
    return T * 4, T * h * dt + (V * h * dt if lm_trainable else 0)
