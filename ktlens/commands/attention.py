"""`ktlens attention --model NAME --input P,R,E --out DIR`: attention views on one offline page.

K-theory: the decoder's self-attention (circuitsvis), cross-attention per head as labelled heatmaps
(decoder positions x p / r / e), and the mean attention to p, r, e per head and position over a seeded
sample of the model's domain (every decoder position, scratch values included, named by what it predicts). MIIII (`--input N`): the attention from '=' to x0, x1 and '='.
"""

from __future__ import annotations

import argparse

from ktlens.commands.common import add_model_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attention", help="attention views (self-attention, cross-attention to p / r / e, MIIII '=')")
    add_model_argument(p)
    p.add_argument("--input", required=True, help="P,R,E for a K-theory model, N for a MIIII model")
    p.add_argument("--summary-size", type=int, default=256, help="inputs averaged in the cross-attention summary")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for attention.html")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import torch

    from ktlens.analysis.domain_sample import sample_triples
    from ktlens.checkpoint import load_pretrained
    from ktlens.commands.common import resolve_model
    from ktlens.commands.dla import parse_input
    from ktlens.viz import attention as views

    torch.set_num_threads(1)
    model = load_pretrained(resolve_model(args.model)).eval()
    tokens, _ = parse_input(model, args.input)
    n_layers = model.cfg.n_layers
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    sections: list = []
    if model.model_type == "miiii":
        words = model.to_str_tokens(tokens[0])
        from_equals = np.stack([cache[f"blocks.{l}.attn.hook_pattern"][0, :, -1].numpy() for l in range(n_layers)])
        sections.append((f"Attention from '=' for n = {args.input} ({' '.join(words)})",
                         views.miiii_attention_figure(from_equals, words, f"Attention from '=' to each input position, n = {args.input}")))
    else:
        words = model.to_str_tokens(tokens[0])
        source, decoder = words[:3], words[3:]
        rows = [f"{k}:{name}" for k, name in enumerate(model.position_labels())]
        for l in range(n_layers):
            pattern = cache[f"blocks.{l}.attn.hook_pattern"][0].numpy()
            heads = [f"L{l}H{h}" for h in range(model.cfg.n_heads)]
            sections.append((f"Decoder self-attention, layer {l} (causal; tokens are the decoder inputs)",
                             views.self_attention_html(pattern, decoder, heads)))
        cross = np.stack([cache[f"blocks.{l}.cross_attn.hook_pattern"][0].numpy() for l in range(n_layers)])
        sections.append((f"Cross-attention to the source for {' '.join(source)}",
                         views.cross_attention_figure(cross, rows, source, f"Cross-attention per head: {' '.join(source)}")))
        p, r, e = sample_triples(model, args.summary_size, np.random.default_rng(args.seed))
        with torch.no_grad():
            _, batch_cache = model.run_with_cache(model.make_batch(p, r, e), names_filter=lambda name: "cross_attn.hook_pattern" in name)
        mean = np.stack([batch_cache[f"blocks.{l}.cross_attn.hook_pattern"].mean(0).numpy() for l in range(n_layers)])
        sections.append((f"Mean cross-attention to p, r, e (seeded sample of {args.summary_size} triples of the domain)",
                         views.cross_attention_summary_figure(mean, rows, args.summary_size)))
    path = views.write_attention_page(Path(args.out) / "attention.html", f"Attention on {args.model}, input {args.input}", sections)
    print(f"wrote {path}")
    return 0
