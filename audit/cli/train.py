"""`audit train`: an architecture, or a model spec, trained and written as a checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

from audit._util.errors import AuditInputError
from audit.cli.options import add_console_options, add_data_options, parse_assignments
from audit.cli.outputs import printable
from audit.core.choices import CONSTRAINTS, FAIR_METHODS

# TrainConfig's defaults, for the help, which must not import torch (tests/test_help_defaults.py keeps them equal)
TRAINING_DEFAULTS = {"epochs": 30, "batch_size": 64, "lr": 1e-3, "seed": 0}
EXIT_COLLAPSED = 1  # --strict: as a failed gate


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train an architecture, or a model spec (models/*.toml)")
    p.add_argument("what", help="an architecture name (audit models) or a spec file NAME.toml")
    add_data_options(p)
    p.add_argument("--dataset", help="a built-in dataset (audit datasets)")
    p.add_argument("-o", "--output", help="checkpoint to write (default: models/<dataset>-<arch>.pt)")
    p.add_argument("--epochs", type=int, help="most epochs; training stops earlier when validation stops improving "
                                              f"(default: the spec's [training], else {TRAINING_DEFAULTS['epochs']})")
    p.add_argument("--batch-size", type=int,
                   help=f"rows per step (default: the spec's [training], else {TRAINING_DEFAULTS['batch_size']})")
    p.add_argument("--lr", type=float,
                   help=f"Adam learning rate (default: the spec's [training], else {TRAINING_DEFAULTS['lr']:g})")
    p.add_argument("--seed", type=int, help=f"drives the split, the initialization and the batches (default: the "
                                            f"spec's [training], else {TRAINING_DEFAULTS['seed']})")
    p.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                   help="an architecture option, e.g. --set hidden=[128,64]")
    p.add_argument("--mitigate", choices=FAIR_METHODS, metavar="METHOD",
                   help=f"fairness-aware training ({', '.join(FAIR_METHODS)}) over the one --sensitive column")
    p.add_argument("--constraint", choices=CONSTRAINTS, help="what --mitigate equalizes (default demographic_parity)")
    p.add_argument("--strength", type=float, help="penalty weight (lagrangian) or adversary weight "
                                                   "(adversarial_debiasing), default 1")
    p.add_argument("--adversarial", choices=["pgd"], help="adversarial training against PGD (Madry et al.)")
    p.add_argument("--epsilon", type=float, help="PGD L-inf epsilon (default: the robustness analyzer's)")
    p.add_argument("--attack-steps", type=int, help="PGD steps per adversarial example (default 10)")
    p.add_argument("--adversarial-share", type=float, help="share of each batch made adversarial (default 0.5)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when the trained model predicts one class for nearly every validation row (the "
                        "checkpoint is still written; without --strict a warning only)")
    add_console_options(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from audit._util.files import check_outputs
    from audit.io import checkpoint
    from audit.models import MODELS
    from audit.models.spec import ModelSpec
    from audit.mitigation.retrain import training_hook
    from audit.models.training import TrainConfig, train

    if args.what.endswith(".toml"):
        if args.dataset or args.data:
            raise AuditInputError("a spec file names its own data; drop --dataset/--data or train an architecture")
        spec = ModelSpec.from_toml(args.what)
    else:
        MODELS.get(args.what)
        name = args.dataset or (Path(args.data).stem if args.data else "data")
        spec = ModelSpec(architecture=args.what, output=Path(args.output or f"models/{name}-{args.what}.pt"),
                         dataset=args.dataset, data=Path(args.data) if args.data else None, target=args.target,
                         sensitive=tuple(args.sensitive), text_column=args.text_column)
    overrides = {k: v for k, v in {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                                   "seed": args.seed}.items() if v is not None}
    config = TrainConfig.from_dict({**spec.training.__dict__, **overrides})
    model_config = {**spec.model, **parse_assignments(args.set, "architecture option")}
    output = Path(args.output) if args.output else spec.output
    if args.output is None:
        output.parent.mkdir(parents=True, exist_ok=True)
    check_outputs({"-o": output}, {"--data": spec.data, "spec": args.what if args.what.endswith(".toml") else None})
    mitigation, adversarial = _training_mitigations(args, spec)
    splits = spec.splits(seed=config.seed)
    outcome = train(spec.architecture, *splits, config=config, model_config=model_config,
                    hook=training_hook(mitigation, adversarial), quiet=args.quiet)
    checkpoint.save(spec.stated_use(outcome.model), output)
    print(printable(f"{spec.architecture} on {splits[0].name}: test accuracy {outcome.test_accuracy:.4f} "
                    f"(validation {outcome.validation_accuracy:.4f}, best epoch {outcome.epochs}), "
                    f"trained in {outcome.seconds:.1f} s -> {output}"))
    collapsed = _predicts_one_class(outcome.model, splits[1])
    if collapsed is None:
        return 0
    print(printable(f"warning: the trained model predicts {collapsed.cls!r} for {collapsed.share:.1%} of the "
                    f"{collapsed.rows:,} validation rows: it barely tells the classes apart (best epoch "
                    f"{outcome.epochs}); try more --epochs, a larger --lr or --set options of the architecture"),
          file=sys.stderr)
    return EXIT_COLLAPSED if args.strict else 0


def _predicts_one_class(model, validation):
    """The class `model` predicts for nearly every row of `validation` (the fairness analyzer's degenerate share),
    or None."""
    import numpy as np

    from audit.analyzers.fairness.groups import DEGENERATE_SHARE
    from audit.analyzers.fairness.summary import Degenerate

    counts = np.bincount(model.predict(validation), minlength=len(model.classes))
    share = counts.max() / max(counts.sum(), 1)
    if share < DEGENERATE_SHARE:
        return None
    return Degenerate(str(model.classes[int(counts.argmax())]), float(share), int(counts.sum()))


def _training_mitigations(args, spec):
    """The spec's [mitigation] and [adversarial] tables, with the command line's flags over them."""
    from audit.models.adversarial_training import AdversarialTraining
    from audit.models.fair_training import Mitigation

    mitigation, adversarial = spec.mitigation, spec.adversarial
    if args.mitigate or (mitigation and (args.constraint or args.strength is not None)):
        base = mitigation.to_dict() if mitigation else {}
        if args.mitigate:
            if len(args.sensitive) != 1:
                raise AuditInputError("--mitigate needs the one sensitive column to train for: --sensitive COL")
            base.update(method=args.mitigate, sensitive=args.sensitive[0])
        given = {"constraint": args.constraint, "strength": args.strength}
        mitigation = Mitigation.from_dict({**base, **{k: v for k, v in given.items() if v is not None}})
    elif args.constraint or args.strength is not None:
        raise AuditInputError("--constraint and --strength go with --mitigate METHOD")
    flags = {"epsilon": args.epsilon, "steps": args.attack_steps, "share": args.adversarial_share}
    if args.adversarial or (adversarial and any(v is not None for v in flags.values())):
        base = adversarial.to_dict() if adversarial else {"attack": args.adversarial}
        adversarial = AdversarialTraining.from_dict({**base, **{k: v for k, v in flags.items() if v is not None}})
    elif any(v is not None for v in flags.values()):
        raise AuditInputError("--epsilon, --attack-steps and --adversarial-share go with --adversarial pgd")
    return mitigation, adversarial
