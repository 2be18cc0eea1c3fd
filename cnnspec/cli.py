"""The `cnnspec` command: click wiring only, the work is done in the library."""

from __future__ import annotations

import functools
import sys
from contextlib import contextmanager

import click

from cnnspec.diagnostics import render_all


def _parse_dims(ctx, param, value):
    """`--input 3x256x256` (the first input), `--input b=3x32x32` (the input named `b`), given
    once per input: a tuple for a bare size alone, a dict by input name (`None` the first) else."""
    if not value:
        return None
    sizes = {}
    for given in value:
        name, _, text = given.rpartition("=")
        key = name.strip() or None
        if key in sizes:
            raise click.BadParameter(f"{'input ' + repr(key) if key else 'the first input'} is given twice")
        sizes[key] = _dims(text)
    return sizes[None] if list(sizes) == [None] else sizes


def _dims(value: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected dimensions like 3x224x224 or NAME=3x224x224, got {value!r}") from None
    if not 2 <= len(dims) <= 4 or any(d < 1 for d in dims):
        raise click.BadParameter(f"expected CxL, CxHxW or CxDxHxW with positive sizes, got {value!r}")
    return dims


def _color(stream) -> bool:
    return stream.isatty() and "NO_COLOR" not in __import__("os").environ


def _spec_argument(func):
    return click.argument("spec", metavar="FILE")(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cnnspec")
def main() -> None:
    """cnnspec: check, summarise and compile CNN architecture specs (.cnn files)."""


@main.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif", "github"]), default="text",
              show_default=True, help="json: the diagnostics' fields; sarif: SARIF 2.1.0 for code scanning; "
                                      "github: workflow annotations.")
@click.option("--output-file", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write the report here instead of to the terminal.")
@click.option("--input", "input_dims", callback=_parse_dims, multiple=True,
              help="Override the declared input, e.g. 3x256x256; one of several by name, b=3x64x64 (repeatable).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="Read [tool.cnnspec] from this pyproject.toml instead of the nearest one.")
@click.option("--isolated", is_flag=True, help="Ignore every configuration file.")
def check(files, strict, fmt, output_file, input_dims, config_file, isolated):
    """Check specs: shapes, arguments, blocks, contracts, lints. Exit 1 on errors.

    Settings come from the [tool.cnnspec] table of the nearest pyproject.toml above each file.
    """
    from cnnspec.network import Network
    from cnnspec.network import check as check_spec
    from cnnspec.report import FileReport, clean_file

    configuration = _configuration(config_file, isolated)
    reports, text = [], []
    for path in _spec_files(files):
        config = configuration(path)
        result = check_spec(path, input_dims, config=config, libraries=True, strict=strict)
        network, diagnostics, sources = result
        reports.append(FileReport(path, result.ok, diagnostics, network if isinstance(network, Network) else None))
        if fmt != "text":
            continue
        if diagnostics:
            rendered = render_all(diagnostics, sources, color=output_file is None and _color(sys.stderr))
        else:
            rendered = clean_file(path, network)
        if output_file is None:
            # problems go to stderr, the figures of clean files to stdout
            click.echo(rendered, err=bool(diagnostics))
        text.append(rendered)
    failed = any(not r.ok for r in reports)
    if fmt != "text":
        _write_report(_structured(fmt, reports), output_file)
    elif output_file is not None:
        _write_report("\n\n".join(text), output_file)
    sys.exit(1 if failed else 0)


def _configuration(config_file=None, isolated=False):
    """spec -> the configuration that applies to it, each folder's looked up once per command;
    a configuration cnnspec cannot use is a usage error (exit 2)."""
    from pathlib import Path

    from cnnspec.config import Config, ConfigError, config_for, load_config

    def usable(read):
        try:
            return read()
        except ConfigError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)

    if isolated or config_file:
        fixed = usable(lambda: Config() if isolated else load_config(config_file))
        return lambda spec: fixed
    by_folder = {}

    def lookup(spec):
        # `zoo:` names take the current folder's configuration
        folder = "zoo:" if str(spec).startswith("zoo:") else str(Path(spec).parent)
        if folder not in by_folder:
            by_folder[folder] = usable(lambda: config_for(spec))
        return by_folder[folder]
    return lookup


def _show_diagnostics(diagnostics, sources) -> None:
    click.echo(render_all(diagnostics, sources, color=_color(sys.stderr)), err=True)


def _structured(fmt: str, reports) -> str:
    from cnnspec import __version__
    from cnnspec.report import github_annotations, json_report, sarif_report

    if fmt == "json":
        return json_report(reports)
    if fmt == "sarif":
        return sarif_report(reports, __version__)
    return github_annotations(reports)


def _write_report(text: str, output_file: str | None) -> None:
    if output_file is None:
        if text:
            click.echo(text)
        return
    with open(output_file, "w", encoding="utf-8") as handle:
        handle.write(text + "\n" if text else "")


def _spec_files(paths) -> list[str]:
    """The files named, with folders replaced by the `.cnn` files under them."""
    from pathlib import Path

    files = []
    for path in paths:
        if Path(path).is_dir():
            files += sorted(str(p) for p in Path(path).rglob("*.cnn"))
        else:
            files.append(path)
    return files


@main.command("fmt")
@click.argument("paths", nargs=-1, required=True, metavar="FILE...")
@click.option("--check", "check_only", is_flag=True, help="Change nothing; exit 1 if a file would be reformatted.")
@click.option("--diff", "show_diff", is_flag=True, help="Change nothing; print the changes as a unified diff.")
def fmt_command(paths, check_only, show_diff):
    """Rewrite specs in the canonical layout, keeping comments. `-` formats stdin to stdout.

    Folders are searched for .cnn files. Formatting never changes what a spec means.
    """
    import difflib

    from cnnspec.diagnostics import SpecError
    from cnnspec.frontend.formatter import format_text
    from cnnspec.frontend.loader import read_source

    if paths == ("-",):
        text = sys.stdin.read()
        try:
            click.echo(format_text(text, "<stdin>"), nl=False)
        except SpecError as error:
            _show_diagnostics(error.diagnostics, error.sources)
            sys.exit(1)
        return
    changed, unchanged, failed = [], 0, False
    for path in _spec_files(paths):
        try:
            # a regular file only, its newlines kept: a FIFO or a device would block or never end
            text = read_source(path, path, newline="")
            formatted = format_text(text, path)
        except SpecError as error:
            _show_diagnostics(error.diagnostics, error.sources)
            failed = True
            continue
        if formatted == text:
            unchanged += 1
            continue
        changed.append(path)
        if show_diff:
            click.echo("".join(difflib.unified_diff(text.splitlines(keepends=True), formatted.splitlines(keepends=True),
                                                    fromfile=path, tofile=path)), nl=False)
        elif check_only:
            click.echo(f"would reformat {path}")
        else:
            _replace(path, formatted)
    verb = "would be reformatted" if check_only or show_diff else "reformatted"
    tally = [f"{len(changed)} file{'s' if len(changed) != 1 else ''} {verb}"] if changed else []
    if unchanged:
        tally.append(f"{unchanged} file{'s' if unchanged != 1 else ''} left unchanged")
    if tally:
        click.echo(", ".join(tally), err=show_diff)
    sys.exit(1 if failed or (changed and (check_only or show_diff)) else 0)


def _replace(path: str, text: str) -> None:
    """Write through a temporary file, so an interrupted run leaves the spec whole."""
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".cnnspec-fmt-", suffix=".cnn")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


@main.command()
@_spec_argument
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json", "csv"]), default="table",
              show_default=True)
@click.option("--depth", type=click.IntRange(min=1), help="Collapse blocks and groups nested deeper than N.")
@click.option("--input", "input_dims", callback=_parse_dims, multiple=True,
              help="Override the declared input, e.g. 3x256x256; one of several by name, b=3x64x64 (repeatable).")
@click.option("--sizes", is_flag=True,
              help="Also work out the input sizes the network is valid for (not with --format csv).")
def summary(spec, fmt, depth, input_dims, sizes):
    """Per-layer table: output shape, params, MACs, receptive field, activations."""
    network = _load_network(spec, input_dims)
    try:
        text = network.summary(format=fmt, depth=depth, sizes=sizes)
    except ValueError as refused:
        # options the summary does not take together (`--sizes` with CSV)
        raise click.UsageError(str(refused)) from None
    click.echo(text)


@main.command("diff")
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json", "github"]), default="text",
              show_default=True, help="markdown: a pull-request comment; json: the fields of "
                                      "cnnspec/schemas/diff.schema.json; github: notices on NEW's changed lines.")
@click.option("--depth", type=click.IntRange(min=1), help="Compare blocks and groups nested N deep, not layers.")
def diff_command(old, new, fmt, depth):
    """Compare two networks layer by layer: OLD and NEW are spec files, `zoo:NAME` or `REV:path`
    (a file at a git revision, its imports as they were there).

    Exit 0 when the networks are the same, 1 when they differ or a side does not check (its
    diagnostics are printed), 2 on usage errors (git cannot give a revision).
    """
    from cnnspec.diff import SideError, SourceError, diff, load_side, render

    configuration, sides, failed = _configuration(), [], False
    for source in (old, new):
        try:
            sides.append(load_side(source, configuration))
        except SourceError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        except SideError as error:
            _show_diagnostics(error.diagnostics, error.sources)
            failed = True
    if failed:
        sys.exit(1)
    result = diff(*sides, depth=depth)
    text = render(result, fmt, color=_color(sys.stdout))
    if text:
        click.echo(text.rstrip("\n"))
    sys.exit(0 if result.identical else 1)


@main.group()
def emit() -> None:
    """Generate source code from a spec."""


@emit.command("torch")
@_spec_argument
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write here instead of stdout.")
def emit_torch(spec, output):
    """Readable PyTorch source: one nn.Module class per spec, importing only torch."""
    source = _load_network(spec).to_torch_source()
    if output is None:
        click.echo(source, nl=False)
        return
    with open(output, "w", encoding="utf-8") as handle:
        handle.write(source)
    click.echo(f"wrote {output}", err=True)


def _load_network(spec, input_dims=None):
    """The checked network under its project's configuration, or the diagnostics printed and exit 1."""
    from cnnspec.network import check as check_spec

    network, diagnostics, sources = check_spec(spec, input_dims, config=_configuration()(spec))
    if network is None:
        _show_diagnostics(diagnostics, sources)
        sys.exit(1)
    return network


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _parse_budget(ctx, param, value):
    from cnnspec.frontend.build import parse_quantity

    try:
        budget = parse_quantity(value)
    except (ValueError, IndexError):
        raise click.BadParameter(f"expected a size in bytes such as 8G or 500M, got {value!r}") from None
    if budget < 1:
        raise click.BadParameter(f"expected a positive size, got {value!r}")
    return {"memory_budget": int(budget), "budget_option": "--memory-budget"}


def _budget_option(func):
    return click.option("--memory-budget", "budget", default="4294967296", callback=_parse_budget, metavar="SIZE",
                        help="Refuse networks whose fp32 weights take more bytes (default 4 GiB; 8G, 500M...).")(func)


def _weights_option(func):
    return click.option("--weights", type=click.Path(exists=True, dir_okay=False),
                        help="A .safetensors, .npz or .pt/.pth state_dict, keyed as the PyTorch backend names "
                             "them (default: seeded random weights).")(func)


@contextmanager
def _backend(entry: str, weights=None):
    """Around a command that builds or runs models: the packages it needs checked first (one line
    naming the missing ones and their extra, exit 2); a backend's diagnostics (exit 1), unusable
    weights or input (exit 1) and conversions of weights (warnings) reported."""
    import warnings

    from cnnspec.backends.extras import MissingExtraError, require, weight_readers

    try:
        require(entry, weight_readers(weights))
    except MissingExtraError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    from cnnspec.backends.metadata import OptionError
    from cnnspec.backends.runtime import RunError
    from cnnspec.backends.weights import WeightsError, WeightsWarning
    from cnnspec.diagnostics import SpecError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", WeightsWarning)
        try:
            yield
        except SpecError as error:
            _show_diagnostics(error.diagnostics, error.sources)
            sys.exit(1)
        except OptionError as error:
            _fail(error.worded(DEPLOYMENT_FLAGS))
        except (WeightsError, RunError, ValueError) as error:
            _fail(str(error))
        finally:
            for warning in caught:
                click.echo(f"warning: {warning.message}", err=True)


def _parse_floats(ctx, param, value):
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas, such as 0.485,0.456,0.406, got {value!r}") \
            from None


def _parse_resize(ctx, param, value):
    if value is None:
        return None
    try:
        sizes = tuple(int(v) for v in value.lower().split("x"))
    except ValueError:
        sizes = ()
    if len(sizes) not in (1, 2) or any(v < 1 for v in sizes):
        raise click.BadParameter(f"expected a size S (the shorter side) or HxW, got {value!r}")
    return sizes


def _deployment_options(func, labels: bool = True):
    """The precision and preprocessing options of `export` (and, but for `--labels`, `verify`)."""
    options = [
        click.option("--fp16", is_flag=True, help="Weights and computation in float16."),
        click.option("--keep-io-types", is_flag=True, help="With --fp16: float32 inputs and outputs."),
        click.option("--int8", is_flag=True,
                     help="Static int8 quantisation (QDQ, per-channel weights, uint8 activations); needs --calibrate."),
        click.option("--calibrate", type=click.Path(exists=True), metavar="DATA",
                     help="int8 calibration data: a folder of .npy arrays or images (read with the preprocessing "
                          "options), or a .npz."),
        click.option("--mean", callback=_parse_floats, metavar="M,M,M",
                     help="Preprocessing stored in the file: per-channel mean on the [0, 1] scale, subtracted."),
        click.option("--std", callback=_parse_floats, metavar="S,S,S",
                     help="Preprocessing: per-channel standard deviation, divided by after the mean."),
        click.option("--resize", callback=_parse_resize, metavar="S|HxW",
                     help="Preprocessing: resize an image to this (S: its shorter side), then centre-crop it."),
        click.option("--channel-order", type=click.Choice(["RGB", "BGR", "L"]),
                     help="Preprocessing: the order of the input's channels."),
    ]
    if labels:
        options.append(click.option("--labels", type=click.Path(exists=True, dir_okay=False),
                                    help="A text file of class labels, one per line, stored in the file."))
    for option in reversed(options):
        func = option(func)
    return func


#: the flag of each deployment option, as `cnnspec.backends.metadata.OptionError` names it
DEPLOYMENT_FLAGS = {"float16": "--fp16", "int8": "--int8", "keep_io_types": "--keep-io-types",
                    "calibration": "--calibrate", "mean": "--mean", "std": "--std", "resize": "--resize",
                    "channel_order": "--channel-order", "labels": "--labels"}


def _deployment(network, fp16=False, keep_io_types=False, int8=False, calibrate=None, mean=None, std=None,
                resize=None, channel_order=None, labels=None):
    """The `Deployment` the options ask for; options that contradict each other are a usage error
    (exit 2), as `Deployment` finds them."""
    from cnnspec.backends.deploy import Deployment, DeploymentError
    from cnnspec.backends.metadata import Preprocessing

    if fp16 and int8:
        raise click.UsageError("give either --fp16 or --int8")
    if calibrate and int8:
        from cnnspec.backends.quantise import holds_images

        if holds_images(calibrate):
            _needs("PIL", _PILLOW)
    try:
        return Deployment(precision="float16" if fp16 else "int8" if int8 else "float32",
                          keep_io_types=keep_io_types, calibration=calibrate,
                          preprocessing=Preprocessing(mean=mean, std=std, resize=resize, channel_order=channel_order),
                          labels=labels)
    except DeploymentError as error:
        raise click.UsageError(error.worded(DEPLOYMENT_FLAGS)) from None


@main.command()
@_spec_argument
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="The .onnx file to write (default: NAME.onnx, after the spec's network name).")
@_weights_option
@click.option("--opset", type=int, help="ONNX opset (default 21; 17 to 26).")
@click.option("--no-fold-bn", is_flag=True, help="Keep BatchNormalization nodes instead of folding them into convs.")
@click.option("--batch", type=click.IntRange(min=1), help="A fixed batch size instead of a symbolic `N`.")
@click.option("--dynamic", type=click.Choice(["batch", "hw"]), default="batch", show_default=True,
              help="Symbolic sizes: the batch, or the batch and the spatial sizes (H and W; D, L in 3D, 1D), "
                   "once the checker has found the sizes the network is valid for (E220 if it fixes them).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights (without --weights).")
@_deployment_options
@_budget_option
def export(spec, output, weights, opset, no_fold_bn, batch, dynamic, seed, budget, **deployment):
    """Export a spec to ONNX, checked with onnx's full checker.

    Every tensor's shape is declared in the file (value_info, named after the spec's labels), and
    its metadata_props name the spec, its sha256, the cnnspec version, the input layout, the
    precision and the preprocessing and class labels given below (keys: docs/deployment.md),
    which `cnnspec run --image` applies. --fp16 stores weights and computes in float16; --int8
    --calibrate DATA quantises statically with onnxruntime's tools, calibrated on DATA. With
    --dynamic hw the sizes the input may take are printed (`input: H and W must be at least 188`)
    and stored in the metadata too.
    """
    with _backend("cnnspec export --int8" if deployment["int8"] else "cnnspec export", weights):
        from cnnspec.backends.onnx_io import export_model, large_buffers_returned

        large_buffers_returned()
        network = _load_network(spec)
        with _StageBar(sys.stderr) as progress:
            summary = export_model(network, output or f"{network.name}.onnx", weights=weights, opset=opset,
                                   fold_bn=not no_fold_bn, batch=batch, seed=seed, dynamic=dynamic,
                                   deployment=_deployment(network, **deployment), progress=progress, **budget)
    click.echo(summary)


class _StageBar:
    """click's progress bar over an export's stages, on a terminal only, and only once the export
    has taken more than a second (a quick export prints nothing more than its summary)."""

    def __init__(self, stream, delay: float = 1.0, clock=None):
        import time

        from cnnspec.backends.onnx_io import STAGES

        self.stream, self.delay, self.clock, self.stages = stream, delay, clock or time.monotonic, STAGES
        self.start, self.bar = self.clock(), None

    def __enter__(self):
        return self

    def __call__(self, stage: str) -> None:
        if self.bar is None and self.stream.isatty() and self.clock() - self.start > self.delay:
            self.bar = click.progressbar(length=len(self.stages), label="exporting", file=self.stream,
                                         item_show_func=lambda item: item, show_eta=False)
            self.bar.__enter__()
            self.bar.update(self.stages.index(stage), stage)
        elif self.bar is not None:
            self.bar.update(1, stage)

    def __exit__(self, *failure):
        if self.bar is not None:
            self.bar.update(len(self.stages) - self.bar.pos, "done")
            self.bar.__exit__(*failure)
        return False


@main.command()
@click.argument("model", metavar="FILE|MODEL.onnx")
@click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False), help="A .npy input array.")
@click.option("--image", "image_path", type=click.Path(exists=True, dir_okay=False),
              help="A PNG or JPEG, read with the preprocessing the .onnx file's metadata states (needs Pillow).")
@click.option("--random", "random_input", is_flag=True, help="A random input (the default without --input).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch size of a random input.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Save the output as .npy.")
@click.option("--seed", type=int, default=0, show_default=True)
@_weights_option
@_budget_option
def run(model, input_path, image_path, random_input, batch, output, seed, weights, budget):
    """Run a spec or an .onnx file with onnxruntime; print the output and top-5 (with the file's
    class labels)."""
    if sum(map(bool, (input_path, image_path, random_input))) > 1:
        _fail("give one of --input, --image and --random")
    if weights and model.endswith(".onnx"):
        _fail("an .onnx file holds its weights: --weights is for a spec")
    with _backend("cnnspec run", weights):
        if image_path:
            _needs("PIL", _PILLOW)
        from cnnspec.backends.runtime import describe_output, run_model

        result = run_model(model, input_path=input_path, batch=batch, seed=seed, load_network=_load_network,
                           weights=weights, image_path=image_path, **budget)
    if output:
        import numpy as np

        # several outputs are saved together, each under its name (np.load gives them by name)
        np.savez(output, **result.named) if result.named else np.save(output, result.output)
    for name, value in result.named.items() or [(None, result.output)]:
        click.echo((f"{name}: " if name else "") + describe_output(value, result.labels))


@main.command()
@_spec_argument
@click.option("--tolerance", type=float,
              help="Largest relative L2 difference from PyTorch (default 1e-4; 1e-2 with --fp16); with --int8, "
                   "from the float32 model (no limit by default).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--opset", type=int, help="ONNX opset (default 21).")
@_weights_option
@functools.partial(_deployment_options, labels=False)
@_budget_option
def verify(spec, tolerance, seed, opset, weights, budget, **deployment):
    """Run PyTorch (eval) and onnxruntime on the same weights and input; exit 1 when the relative
    L2 difference is over the tolerance. The line also gives the largest difference, and that over
    the output's largest |value| (not over each value, which blows up near zero).

    With --fp16 the float16 model is compared with PyTorch's float32. With --int8 --calibrate DATA
    the int8 model is compared with the float32 one on the calibration data: the share of samples
    whose top-1 class agrees, and the relative L2 difference.
    """
    with _backend("cnnspec verify", weights):
        from cnnspec.backends.deploy import TOLERANCES
        from cnnspec.backends.runtime import verify_int8, verify_network

        network = _load_network(spec)
        chosen = _deployment(network, **deployment)
        if chosen.precision == "int8":
            int8 = verify_int8(network, chosen.calibration, chosen.preprocessing, seed=seed, opset=opset,
                               weights=weights, **budget)
        else:
            report = verify_network(network, seed=seed, opset=opset, weights=weights, deployment=chosen, **budget)
    if chosen.precision == "int8":
        agreement = "" if int8.top1_agreement is None else f"top-1 agreement {int8.top1_agreement:.1%}, "
        ok = tolerance is None or int8.relative_l2 <= tolerance
        verdict = "" if tolerance is None else f" ({'ok' if ok else 'over'} tolerance {tolerance:g})"
        click.echo(f"{network.name}: int8 against float32 on {int8.samples} calibration samples: {agreement}"
                   f"relative L2 {int8.relative_l2:.3g}{verdict}")
        sys.exit(0 if ok else 1)
    tolerance = TOLERANCES[chosen.precision] if tolerance is None else tolerance
    ok = report.relative_l2 <= tolerance
    precision = " (float16)" if chosen.precision == "float16" else ""
    shapes = ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in network.output_shapes.items())
    outputs = f"outputs {shapes}" if shapes else f"output {'x'.join(map(str, report.shape))}"
    click.echo(f"{network.name}{precision}: {outputs}, max abs diff {report.max_abs:.3g} "
               f"({report.max_of_peak:.3g} of the largest |value|, {report.peak:.3g}), relative L2 "
               f"{report.relative_l2:.3g} ({'ok' if ok else 'over'} tolerance {tolerance:g} on the relative L2)")
    sys.exit(0 if ok else 1)


@main.group()
def zoo() -> None:
    """The networks shipped with cnnspec (`zoo:NAME` wherever a file is taken)."""


@zoo.command("list")
def zoo_list():
    """Every zoo network with its input, parameters and MACs."""
    from cnnspec.wording import human
    from cnnspec.zoo import zoo_entry, zoo_names

    for name in zoo_names():
        e = zoo_entry(name)
        click.echo(f"{name:22} {'x'.join(map(str, e.input_shape)):>10}  {e.params:>12,} params  "
                   f"{human(e.macs):>8} MACs  {e.title}")


@zoo.command("show")
@click.argument("name")
def zoo_show(name):
    """Print a zoo network's spec."""
    from cnnspec.zoo import zoo_names, zoo_path

    if name not in zoo_names():
        from cnnspec.wording import closest

        near = closest(name, zoo_names())
        _fail(f"no zoo network `{name}`" + (f"; did you mean `{near}`?" if near else "; see `cnnspec zoo list`"))
    click.echo(zoo_path(name).read_text(), nl=False)


@zoo.command("table")
def zoo_table_command():
    """The zoo as the Markdown table of docs/zoo.md."""
    from cnnspec.zoo import zoo_table

    click.echo(zoo_table(), nl=False)


@main.command()
@click.argument("code")
def explain(code):
    """Explain a diagnostic code: what it means, why, and what to write instead."""
    from cnnspec.codes import CODES, Code

    found = Code.lookup(code)
    if found is None:
        from cnnspec.wording import closest

        near = closest(code.upper(), list(CODES))
        _fail(f"no diagnostic `{code.upper()}`" + (f"; did you mean `{near}`?" if near else ""))
    if found.page.exists():
        click.echo(found.page.read_text(encoding="utf-8"), nl=False)
        return
    click.echo(f"{found} ({found.severity}): {found.title}")


@main.command()
def layers():
    """List the layer kinds with their arguments."""
    from cnnspec.layers import REGISTRY, option_names, usage

    for name, kind in sorted(REGISTRY.items(), key=lambda item: (item[1].family, item[0])):
        click.echo(f"{kind.family:14} {usage(name):28} {kind.summary}")
        if fields := option_names(name):
            click.echo(f"{'':14} {'':28} options: {', '.join(fields)}")


@main.command()
def lsp():
    """Run the language server over stdio (needs the `lsp` extra: pygls)."""
    from cnnspec.lsp import serve

    serve()


# ------------------------------------------------------------------ pictures (cnnspec.draw)
_PILLOW = 'Pillow is not installed: pip install "cnnspec[images]"'


def _needs(module: str, hint: str) -> None:
    """One line naming the extra that brings a missing library, and exit 2."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:  # an import hook refusing the package, as an environment without it would
        found = False
    if not found:
        click.echo(f"error: {hint}", err=True)
        sys.exit(2)


def _write_bytes(path: str, data: bytes) -> None:
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError as error:
        _fail(f"cannot write {path}: {error.strerror or error}")


@main.command()
@_spec_argument
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The file to write.")
@click.option("--depth", type=click.IntRange(min=1), help="Collapse blocks and groups nested N deep into one box.")
@click.option("--direction", type=click.Choice(["down", "right"]), default="down", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["svg", "png", "dot"]),
              help="svg, png (needs Pillow) or dot (Graphviz text); by default the output's extension, else svg.")
@click.option("--scope", help="Draw only this block call or labelled group (`Mixed_5b`, `layer2.0`).")
@click.option("--input", "input_dims", callback=_parse_dims, multiple=True,
              help="Override the declared input, e.g. 3x256x256; one of several by name, b=3x64x64 (repeatable).")
def draw(spec, output, depth, direction, fmt, scope, input_dims):
    """Draw a network's diagram: layers, shapes, merges and nested blocks."""
    from cnnspec.draw import format_for, render

    fmt = format_for(output, fmt)
    if fmt == "png":
        _needs("PIL", _PILLOW)
    network = _load_network(spec, input_dims)
    try:
        data = render(network, fmt, depth, direction, scope)
    except ValueError as error:  # a scope the network does not have
        _fail(str(error))
    _write_bytes(output, data)


@main.command()
@_spec_argument
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .html file to write.")
@click.option("--depth", type=click.IntRange(min=1), default=2, show_default=True,
              help="Groups nested N deep start closed.")
@click.option("--input", "input_dims", callback=_parse_dims, multiple=True,
              help="Override the declared input, e.g. 3x256x256; one of several by name, b=3x64x64 (repeatable).")
def view(spec, output, depth, input_dims):
    """Write one self-contained HTML page: the diagram with groups that open and close in place,
    and each layer's row of the summary on hover or click."""
    from cnnspec.draw.view import to_html

    _write_bytes(output, to_html(_load_network(spec, input_dims), depth).encode())


@main.command()
@_spec_argument
@click.option("--image", "images", type=click.Path(dir_okay=False), multiple=True,
              help="A PNG or JPEG, resized to the spec's input; once for each input of a network of several, in "
                   "their order.")
@click.option("--layer", "layers", help="Layers (or scopes, merges) whose outputs to show, separated by commas.")
@click.option("--kernels", help="Draw this conv layer's kernels instead.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False),
              help="A .safetensors, .npz or .pt/.pth state_dict (default: the spec's literal kernels, else seeded "
                   "random weights).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .png file to write.")
def taps(spec, images, layers, kernels, weights, output):
    """Run the network (PyTorch, eval) on a picture and draw the chosen layers' feature maps, or
    draw a conv's kernels."""
    if kernels is None and (not images or not layers):
        raise click.UsageError("give --image and --layer NAME[,NAME...], or --kernels NAME")
    _needs("torch", 'PyTorch is not installed: pip install "cnnspec[torch]"')
    _needs("PIL", _PILLOW)
    from cnnspec.draw.taps import TapsError, taps_png

    network = _load_network(spec)
    names = [name.strip() for name in (layers or "").split(",") if name.strip()]
    try:
        data = taps_png(network, images, names, kernels, weights)
    except TapsError as error:
        _fail(str(error))
    _write_bytes(output, data)
