"""`python -m lps_keras.convert --checkpoint F --output model.keras [--saved_model DIR]
[--override key=value ...]`: converts an official PyTorch checkpoint (see
`lps_keras.convert.official`). Override values are parsed as JSON when they parse
(`downsampling=aps` stays a string, `log_softmax=true` becomes True)."""

import argparse
import json
import sys


def _parse_override(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--override needs key=value; got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lps_keras.convert",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--output", required=True, help="the .keras file to write")
    parser.add_argument("--saved_model", default=None, help="also export a SavedModel here")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    from lps_keras.convert.official import convert_checkpoint
    from lps_keras.convert.torch_checkpoint import TorchCheckpointError

    try:
        overrides = dict(_parse_override(o) for o in args.override)
        model = convert_checkpoint(args.checkpoint, **overrides)
    except (TorchCheckpointError, ValueError, OSError) as err:
        message = " ".join(str(err).split())
        print(f"error: {args.checkpoint}: {type(err).__name__}: {message}", file=sys.stderr)
        return 2
    model.save(args.output)
    print(f"wrote {args.output}")
    if args.saved_model:
        from lps_keras.export import export_saved_model

        export_saved_model(model, args.saved_model)
        print(f"wrote {args.saved_model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
