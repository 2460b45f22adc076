"""A small Transformer encoder classifier: Vaswani et al., "Attention Is All You Need",
NeurIPS 2017 (arXiv:1706.03762), with pre-LayerNorm residual blocks (Xiong et al., "On Layer
Normalization in the Transformer Architecture", ICML 2020) and a learned positional
embedding, in the style of nanoGPT (bidirectional: no causal mask).

Attention is written out (``MatMul`` → ``Softmax`` → ``MatMul``) rather than using
``nn.MultiheadAttention``, so the exported graph shows it. ``attention_mask`` (1 = token,
0 = padding) is added to the scores of every layer and weights the final mean pool, so the
output does not depend on what padded positions hold.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB_SIZE = 1000
MAX_LEN = 512  # rows of the positional embedding: the longest sequence the model accepts
D_MODEL = 256
N_LAYERS = 4
N_HEADS = 4
D_FF = 1024  # 4 x d_model, as in the paper's base model (512 → 2048)
NUM_CLASSES = 10
INIT_STD = 0.02  # nanoGPT / GPT-2 initialisation
# Added to the scores of padded keys: after softmax's max subtraction exp() underflows to
# exactly 0 in float32, and unlike -inf a fully padded row cannot produce NaN.
MASK_VALUE = -1e9


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention (§3.2.1, §3.2.2)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)  # W^Q, W^K, W^V of all heads at once
        self.proj = nn.Linear(d_model, d_model)  # W^O

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        # x: [B, T, D]; mask_bias: [B, 1, 1, T], 0 for tokens and MASK_VALUE for padding
        B, T, D = x.shape
        H, hd = self.n_heads, self.head_dim
        q, k, v = self.qkv(x).split(D, dim=2)  # 3 x [B, T, D]
        q = q.view(B, T, H, hd).transpose(1, 2)  # [B, H, T, hd]
        k = k.view(B, T, H, hd).transpose(1, 2)  # [B, H, T, hd]
        v = v.view(B, T, H, hd).transpose(1, 2)  # [B, H, T, hd]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))  # [B, H, T, T]
        att = att + mask_bias  # padded keys get MASK_VALUE
        att = F.softmax(att, dim=-1)  # [B, H, T, T]
        y = att @ v  # [B, H, T, hd]
        y = y.transpose(1, 2).contiguous().view(B, T, D)  # [B, T, D]: heads side by side
        out: torch.Tensor = self.proj(y)  # [B, T, D]
        return out


class FeedForward(nn.Module):
    """Position-wise feed-forward network (§3.3) with exact (erf) GELU."""

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, d_ff)
        self.gelu = nn.GELU()  # approximate="none": 0.5 x (1 + erf(x / sqrt 2))
        self.proj = nn.Linear(d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, D]
        out: torch.Tensor = self.proj(self.gelu(self.fc(x)))  # [B, T, D_FF] → [B, T, D]
        return out


class Block(nn.Module):
    """Pre-LN encoder layer: x + Attn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads)
        self.ln_2 = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ff)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask_bias)  # [B, T, D]
        x = x + self.ffn(self.ln_2(x))  # [B, T, D]
        return x


class TransformerClassifier(nn.Module):
    def __init__(
        self,
        vocab_size: int = VOCAB_SIZE,
        max_len: int = MAX_LEN,
        d_model: int = D_MODEL,
        n_layers: int = N_LAYERS,
        n_heads: int = N_HEADS,
        d_ff: int = D_FF,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)  # pre-LN stacks end with a final LayerNorm
        self.head = nn.Linear(d_model, num_classes)
        # nanoGPT's initialisation; residual projections scaled by 1/sqrt(2 * n_layers)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, 0.0, INIT_STD / math.sqrt(2 * n_layers))
            elif p.dim() == 2:
                nn.init.normal_(p, 0.0, INIT_STD)
            elif name.endswith("bias") and "ln" not in name:
                nn.init.zeros_(p)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # input_ids, attention_mask: [B, T] int64
        T = input_ids.shape[1]
        pos = torch.arange(T, dtype=torch.long, device=input_ids.device)  # [T]
        x = self.tok_emb(input_ids) + self.pos_emb(pos)  # [B, T, D]
        m = attention_mask.to(x.dtype)  # [B, T]
        mask_bias = ((1.0 - m) * MASK_VALUE)[:, None, None, :]  # [B, 1, 1, T]
        for block in self.blocks:
            x = block(x, mask_bias)  # [B, T, D]
        x = self.ln_f(x)  # [B, T, D]
        # mean over real tokens only
        summed = (x * m.unsqueeze(-1)).sum(dim=1)  # [B, D]
        count = m.sum(dim=1, keepdim=True).clamp(min=1.0)  # [B, 1]
        logits: torch.Tensor = self.head(summed / count)  # [B, NUM_CLASSES]
        return logits


def transformer() -> TransformerClassifier:
    """4 layers, d_model 256, 4 heads, FFN 1024, vocabulary 1000, 10 classes (3.5M params)."""
    return TransformerClassifier()
