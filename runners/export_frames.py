"""Write a pianoeval encoder's frames of every PercePiano segment to a frames file.

    python runners/export_frames.py --model note_sa --out frames.pt                  # random init (said so)
    python runners/export_frames.py --model han --checkpoint results/runs/<run> --out han.pt
    python runners/export_frames.py --model s3_continuous --set model.pretrained=true --out s3.pt
    python runners/export_frames.py --model a1_lora --layer 2 --out hidden2.pt       # backbone hidden state 2
    python runners/export_frames.py --model note_sa --limit 40 --out small.pt         # about 40 segments

The file is a torch.save dict {segment key: float16 tensor [T, D]}; train on it with
data.frames (docs/frames.md), e.g. python runners/train.py --model frames_probe --set data.frames=frames.pt
"""

import sys

from pianoeval.cli import Parser, non_negative_int, positive_int, run_cli
from pianoeval.config import parse_set
from pianoeval.fusion.exportable import export_config


def main(args) -> int:
    overrides = parse_set(args.set or [])
    export_config(args.model, args.checkpoint, overrides, warn=lambda message: None)  # a config error stops here
    # lazy: torch and the encoders load once the config is valid (keeps config errors under 1 s)
    from pianoeval.fusion.export import export_frames

    summary = export_frames(args.model, args.out, checkpoint=args.checkpoint, overrides=overrides,
                            limit=args.limit, keys=args.keys.split(",") if args.keys else None, layer=args.layer,
                            progress=False if args.no_progress else None)
    print(summary.line())
    return 0


if __name__ == "__main__":
    p = Parser(description=__doc__)
    p.add_argument("--model", required=True, help="a registered encoder (HAN family, s1_remi, s2_gnn, s2h_hetero, "
                                                  "s3_continuous, a1_lora, a2_staged, a3_unfreeze)")
    p.add_argument("--out", required=True, help="the frames file to write (.pt)")
    p.add_argument("--checkpoint", metavar="RUN", help="a training run's folder (its model.pt and resolved.yaml)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override the encoder's config, e.g. "
                                                                      "model.hidden_size=64, data.fold=1")
    p.add_argument("--layer", type=non_negative_int, help="audio models: export backbone hidden state LAYER (0 = log-mel)")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="only about N segments: whole music groups (all performances of a score segment)")
    p.add_argument("--keys", help="only these segment keys (comma-separated)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (default: one on a terminal)")
    sys.exit(run_cli(lambda: main(p.parse_args())))
