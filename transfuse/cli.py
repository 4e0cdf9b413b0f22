"""Command line: ``transfuse apply``, ``transfuse explain`` and ``transfuse demo``.

``transfuse apply RECIPE INPUT OUTPUT`` resamples an image file (``.npy``, ``.tif``/``.tiff``,
``.zarr``) through a recipe (a transform or a pipeline: ``.json``, or an ITK ``.tfm``/``.txt``)
and writes the result all or nothing. ``transfuse explain RECIPE`` prints what a recipe does.
See ``docs/cli.md``.

Exit codes
----------
0
    Success.
1
    Runtime failure while computing or writing (I/O error, out of space, a failing task).
2
    Usage or input error: bad arguments, missing files, a bad recipe, a recipe that does not
    fit the input, an unknown file type, an output that already exists.
129
    Hung up (SIGHUP: the terminal went away).
130
    Interrupted (SIGINT, Ctrl-C).
143
    Terminated (SIGTERM).

On SIGINT, SIGTERM and SIGHUP the running tasks finish, the partial output is removed and
the command exits with the code above. A signal that was ignored when the command started
(``nohup``, a background job of a non-interactive shell) stays ignored.

Errors are reported as one line on stderr, ``transfuse: error: ...``, without a traceback
(``--traceback`` shows it).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

__all__ = [
    "main",
    "build_parser",
    "CLIError",
    "Terminated",
    "HungUp",
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "EXIT_HANGUP",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_HANGUP = 129
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

#: ``--scheduler`` values that run in this process (anything else is a distributed address).
LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


class CLIError(Exception):
    """An error reported as one line on stderr, with the exit code to return.

    Parameters
    ----------
    message : str
    code : int
        Exit code (default :data:`EXIT_USAGE`).
    """

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like a KeyboardInterrupt so that the same clean-up runs."""


class HungUp(KeyboardInterrupt):
    """SIGHUP, raised like a KeyboardInterrupt so that the same clean-up runs."""


# -- argument types ---------------------------------------------------------------------------
def _positive_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive integer or a comma-separated list of them"
        )
    return values


def _chunks_arg(text: str):
    """``N`` (every axis) or ``a,b,c`` (one per axis)."""
    values = _positive_ints(text)
    return values[0] if len(values) == 1 and "," not in text else values


def _dtype_arg(text: str):
    import numpy as np

    try:
        dtype = np.dtype(text)
    except TypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a numpy dtype") from None
    if dtype.kind not in "biuf":
        raise argparse.ArgumentTypeError(f"{text!r} is not a real numeric dtype")
    return dtype


# -- the parser -------------------------------------------------------------------------------
def _add_resample_options(parser: argparse.ArgumentParser) -> None:
    from .planner.options import MODES

    parser.add_argument(
        "--chunks",
        type=_chunks_arg,
        metavar="N|a,b,c",
        help="chunk size of the input and the output (overrides the recipe's output_chunks)",
    )
    parser.add_argument(
        "--order", type=int, metavar="K", help="spline order 0-5 (default: recipe's, else 3)"
    )
    parser.add_argument(
        "--mode",
        choices=sorted(MODES),
        metavar="M",
        help="boundary mode, as scipy.ndimage (default: recipe's, else constant)",
    )
    parser.add_argument(
        "--cval",
        type=float,
        metavar="V",
        help="value outside the input (default: recipe's, else 0)",
    )
    parser.add_argument(
        "--traceback", action="store_true", help="show the full traceback of an error"
    )


def _add_apply(sub) -> None:
    p = sub.add_parser(
        "apply",
        help="resample an image file through a recipe",
        description="Resample INPUT through RECIPE and write OUTPUT (.npy, .tif/.tiff, "
        ".zarr, .ome.zarr). OUTPUT appears only when complete; an .ome.zarr INPUT's grid "
        "carries over to an .ome.zarr OUTPUT.",
    )
    p.add_argument("recipe", metavar="RECIPE", help="transform or pipeline (.json, .tfm, .txt)")
    p.add_argument(
        "input", metavar="INPUT", help="image to read (.npy, .tif, .tiff, .zarr, .ome.zarr)"
    )
    p.add_argument(
        "output", metavar="OUTPUT", help="image to write (.npy, .tif, .tiff, .zarr, .ome.zarr)"
    )
    _add_resample_options(p)
    p.add_argument(
        "--scheduler",
        default="threads",
        metavar="threads|processes|ADDRESS",
        help="dask scheduler, or the address of a dask.distributed scheduler",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    p.add_argument(
        "--ome-version",
        default="0.5",
        choices=["0.4", "0.5", "0.6"],
        help="OME-NGFF version of an .ome.zarr OUTPUT (default 0.5)",
    )
    p.add_argument(
        "--levels",
        type=int,
        default=None,
        metavar="N",
        help="pyramid levels of an .ome.zarr OUTPUT (default 1: no pyramid)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def _add_explain(sub) -> None:
    p = sub.add_parser(
        "explain",
        help="print the plan of a recipe",
        description="Print the plan of RECIPE for a placeholder input of --shape (never "
        "computed), or describe the recipe when no shape is given.",
    )
    p.add_argument("recipe", metavar="RECIPE", help="transform or pipeline (.json, .tfm, .txt)")
    p.add_argument(
        "--shape", type=_positive_ints, metavar="a,b,c", help="shape of the placeholder input"
    )
    p.add_argument(
        "--dtype", type=_dtype_arg, metavar="D", help="dtype of the placeholder (default float64)"
    )
    _add_resample_options(p)


def build_parser() -> argparse.ArgumentParser:
    """The ``transfuse`` argument parser (sub-commands ``apply``, ``explain``, ``demo``)."""
    parser = argparse.ArgumentParser(
        prog="transfuse",
        description="Compose geometric transforms lazily and resample once.",
        epilog="exit codes: 0 ok, 1 runtime failure, 2 usage or input error, "
        "129 hung up, 130 interrupted, 143 terminated",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_apply(sub)
    _add_explain(sub)
    demo = sub.add_parser("demo", help="run the built-in demo on a generated volume")
    demo.add_argument("--size", type=int, default=96, help="edge of the cubic volume")
    demo.add_argument("--chunks", type=int, default=32, help="chunk edge")
    demo.add_argument("--output", default="transfuse-demo-output.npy", help=".npy to write")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    return parser


# -- shared steps -----------------------------------------------------------------------------
def _one_line(text) -> str:
    return " ".join(str(text).split())


def _error(message) -> None:
    print(f"transfuse: error: {_one_line(message)}", file=sys.stderr)


def _load_pipeline(path: str, args):
    """The recipe at ``path`` as a :class:`~transfuse.io.recipes.Pipeline`, with the
    command-line options applied over its own."""
    from .io import read_transform
    from .io.recipes import Pipeline

    try:
        recipe = read_transform(path)
    except FileNotFoundError as exc:
        raise CLIError(f"recipe {path!r}: no such file") from exc
    except OSError as exc:
        raise CLIError(f"recipe {path!r}: cannot read it ({exc.strerror or exc})") from exc
    except ValueError as exc:  # RecipeError, FormatError, unknown suffix
        raise CLIError(f"bad recipe {path!r}: {exc}") from exc
    pipeline = recipe if isinstance(recipe, Pipeline) else Pipeline(recipe)
    changes = {k: getattr(args, k) for k in ("order", "mode", "cval")}
    changes["output_chunks"] = args.chunks
    try:
        return dataclasses.replace(pipeline, **{k: v for k, v in changes.items() if v is not None})
    except ValueError as exc:
        raise CLIError(f"invalid option: {exc}") from exc


def _check_chunks(chunks, ndim: int, what: str) -> None:
    if isinstance(chunks, tuple) and len(chunks) != ndim:
        raise CLIError(f"--chunks has {len(chunks)} entries but {what} is {ndim}-D")


def _resample(pipeline, image, what: str):
    """``pipeline`` applied to ``image`` (a dask array or a lazy image with a grid), as a
    lazy image (on the input's grid, its index->physical map kept)."""
    try:
        return pipeline.apply(image)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise CLIError(
            f"cannot apply the recipe to {what} (shape {image.shape}, {image.dtype}): {exc}"
        ) from exc


# -- apply ------------------------------------------------------------------------------------
def _is_ome_zarr(path: str) -> bool:
    return str(path).rstrip("/").lower().endswith(".ome.zarr")


def _open_input(path: str, chunks):
    from .io.arrays import ImageFileError, read_image

    if _is_ome_zarr(path):
        from .io.errors import FormatError
        from .io.ome_zarr import read_ome_zarr

        try:
            image = read_ome_zarr(path)
            if chunks is not None:
                _check_chunks(chunks, image.ndim, f"INPUT {path!r}")
                image = read_ome_zarr(path, chunks=chunks)
        except (FormatError, ValueError, OSError) as exc:
            raise CLIError(f"INPUT {path!r}: {exc}") from exc
        return image
    try:
        image = read_image(path)
        if chunks is not None:
            _check_chunks(chunks, image.ndim, f"INPUT {path!r}")
            image = read_image(path, chunks)
    except ImageFileError as exc:
        raise CLIError(f"INPUT {exc}") from exc
    return image


def _related(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are the same path or one lies inside the other."""
    a, b = a.resolve(), b.resolve()
    return a == b or a in b.parents or b in a.parents


def _check_output(input_path: str, output_path: str, overwrite: bool) -> None:
    from .io.arrays import ImageFileError, check_output

    if _related(Path(input_path), Path(output_path)):
        raise CLIError(f"OUTPUT {output_path!r} would overwrite INPUT {input_path!r}")
    try:
        check_output(output_path, overwrite)
    except ImageFileError as exc:
        raise CLIError(f"OUTPUT {exc}") from exc


@contextlib.contextmanager
def _scheduler(name: str):
    """Yield the ``scheduler`` argument for :func:`~transfuse.io.arrays.write_image`:
    a local scheduler's name, or None with a distributed client made the default."""
    if name in LOCAL_SCHEDULERS:
        yield name
        return
    try:
        from distributed import Client
    except ImportError as exc:
        raise CLIError(
            f"--scheduler {name!r}: dask.distributed is not installed "
            "(pip install distributed), use threads or processes"
        ) from exc
    try:
        client = Client(name)
    except (OSError, TimeoutError, ValueError) as exc:
        raise CLIError(f"cannot connect to the dask scheduler at {name!r}: {exc}", 1) from exc
    _drop_cancelled_task_reports(client)
    try:
        yield None
    except KeyboardInterrupt:
        _quiet_async_shutdown()
        raise
    finally:
        uninterrupted(client.close)


def _drop_cancelled_task_reports(client) -> None:
    """On an interrupt the client cancels its pending gathers; asyncio then reports each as
    "Task exception was never retrieved" with a traceback when it is collected, which can
    be before the interrupt reaches us. Drop those reports (only those) on the client's
    event loop."""
    loop = getattr(getattr(client, "loop", None), "asyncio_loop", None)
    if loop is None:
        return

    def handler(loop, context):
        exc = context.get("exception")
        if isinstance(exc, KeyboardInterrupt) or type(exc).__name__ in (
            "AllExit",
            "CancelledError",
        ):
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def _quiet_async_shutdown() -> None:
    """After an interrupt, the distributed client's pending asyncio tasks are cancelled and
    report it ("Task exception was never retrieved", tracebacks) through logging as they
    are collected: silence those loggers, the one-line message says what happened."""
    import logging

    for name in ("asyncio", "distributed", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def uninterrupted(func, *args):
    """Run ``func(*args)`` to the end, through further interrupts (clean-up must finish)."""
    from .io.arrays import uninterrupted as run

    return run(func, *args)


#: Signals raised as exceptions, so that the partial output is removed (see _interrupted).
_SIGNALS = {"SIGTERM": Terminated, "SIGHUP": HungUp}


@contextlib.contextmanager
def _signals_as_interrupts():
    """Turn SIGTERM into :class:`Terminated` and SIGHUP into :class:`HungUp` while the block
    runs (main thread only). Signals that are ignored (SIG_IGN) stay ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        raise _SIGNALS[signal.Signals(signum).name]()

    try:
        for name in _SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:
                previous[sig] = signal.signal(sig, handler)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _progress(show: bool):
    if not show:
        return contextlib.nullcontext()
    from dask.diagnostics import ProgressBar

    class Bar(ProgressBar):
        """dask's bar, ending its line when the compute is interrupted (so that the error
        message that follows starts a line of its own)."""

        def __exit__(self, *exc):
            super().__exit__(*exc)
            if exc[0] is not None:
                print(file=sys.stderr)

    return Bar(out=sys.stderr)


def _write_ome_zarr(result, args, scheduler) -> None:
    import dask

    from .io.arrays import ImageFileError, atomic_output
    from .io.ome_zarr import write_ome_zarr

    try:
        with atomic_output(args.output, args.overwrite) as partial:
            ctx = dask.config.set(scheduler=scheduler) if scheduler else contextlib.nullcontext()
            with ctx:
                write_ome_zarr(
                    result,
                    partial,
                    version=args.ome_version,
                    levels=args.levels,
                    overwrite=True,
                )
    except ImageFileError as exc:
        raise CLIError(f"OUTPUT {exc}") from exc
    except ValueError as exc:
        raise CLIError(f"OUTPUT {args.output!r}: {exc}") from exc


def _write(result, args) -> None:
    from .io.arrays import ImageFileError, write_image

    if _is_ome_zarr(args.output):
        with _scheduler(args.scheduler) as scheduler:
            with _progress(not args.quiet and scheduler is not None):
                try:
                    _write_ome_zarr(result, args, scheduler)
                except CLIError:
                    raise
                except Exception as exc:
                    raise CLIError(
                        f"writing {args.output!r} failed: {_describe_exc(exc)}", 1
                    ) from exc
        return
    result = result.to_dask()

    with _scheduler(args.scheduler) as scheduler:
        show = not args.quiet and scheduler is not None
        with _progress(show):
            try:
                write_image(result, args.output, overwrite=args.overwrite, scheduler=scheduler)
            except ImageFileError as exc:
                raise CLIError(f"OUTPUT {exc}") from exc
            except Exception as exc:
                raise CLIError(f"writing {args.output!r} failed: {_describe_exc(exc)}", 1) from exc


def _describe_exc(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _cmd_apply(args) -> int:
    t0 = time.perf_counter()
    pipeline = _load_pipeline(args.recipe, args)
    image = _open_input(args.input, args.chunks)
    _check_output(args.input, args.output, args.overwrite)
    result = _resample(pipeline, image, f"INPUT {args.input!r}")
    _write(result, args)
    if not args.quiet:
        print(
            f"transfuse: wrote {args.output} (shape {result.shape}, {result.dtype}) "
            f"in {time.perf_counter() - t0:.2f} s",
            file=sys.stderr,
        )
    return EXIT_OK


# -- explain ----------------------------------------------------------------------------------
def _matrix_text(transform) -> str | None:
    import numpy as np

    if not transform.is_affine or transform.ndim is None or transform.free_symbols:
        return None
    try:
        matrix = np.asarray(transform.matrix(), dtype=np.float64)
    except (ValueError, TypeError):
        return None
    with np.printoptions(precision=6, suppress=True, linewidth=100):
        return "\n".join("  " + row for row in str(matrix).splitlines())


def _describe(pipeline) -> str:
    """Text for a recipe without an input: its transform and resampling settings."""
    t = pipeline.transform
    lines = [f"transform: {t!r}"]
    lines.append(f"dimensions: {t.ndim if t.ndim is not None else 'set by the input'}")
    if t.free_symbols:
        names = ", ".join(sorted(s.name for s in t.free_symbols))
        lines.append(f"free symbols: {names} (bind them before applying the recipe)")
    matrix = _matrix_text(t)
    if matrix is not None:
        lines.append("matrix (output index -> input index, homogeneous):")
        lines.append(matrix)
    shape = pipeline.output_shape or "as the input"
    chunks = pipeline.output_chunks or "as the input"
    lines.append(
        f"resampling: order={pipeline.order} mode={pipeline.mode} cval={pipeline.cval:g} "
        f"prefilter={pipeline.prefilter} output_shape={shape} output_chunks={chunks}"
    )
    lines.append("(give --shape to see the plan for an input of that shape)")
    return "\n".join(lines)


def _placeholder(shape, dtype, chunks):
    import dask.array as da

    _check_chunks(chunks, len(shape), "--shape")
    return da.zeros(shape, dtype=dtype or "float64", chunks="auto" if chunks is None else chunks)


def _cmd_explain(args) -> int:
    pipeline = _load_pipeline(args.recipe, args)
    if args.shape is None:
        if args.chunks is not None or args.dtype is not None:
            raise CLIError("--chunks and --dtype need --shape")
        print(_describe(pipeline))
        return EXIT_OK
    image = _placeholder(args.shape, args.dtype, args.chunks)
    try:
        text = pipeline.apply(image).explain()
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise CLIError(
            f"cannot apply the recipe to shape {image.shape} ({image.dtype}): {exc}"
        ) from exc
    print(text)
    return EXIT_OK


# -- demo -------------------------------------------------------------------------------------
def _cmd_demo(args) -> int:
    from .demo import check_demo_output, run_demo
    from .io.arrays import ImageFileError

    if args.size < 4 or args.chunks < 1:
        raise CLIError("--size must be >= 4 and --chunks >= 1")
    try:
        check_demo_output(args.output, args.overwrite)  # before computing anything
    except ImageFileError as exc:
        raise CLIError(f"--output {exc}") from exc
    try:
        run_demo(args.size, args.chunks, args.output, overwrite=args.overwrite)
    except ImageFileError as exc:  # the output appeared meanwhile
        raise CLIError(f"--output {exc}") from exc
    except OSError as exc:
        raise CLIError(f"writing {args.output!r} failed: {_describe_exc(exc)}", 1) from exc
    return EXIT_OK


# -- entry point ------------------------------------------------------------------------------
_COMMANDS = {"apply": _cmd_apply, "explain": _cmd_explain, "demo": _cmd_demo}


def _show_traceback(args, exc) -> None:
    if exc is not None and getattr(args, "traceback", False):
        traceback.print_exception(exc)


def _run(args) -> int:
    try:
        return _COMMANDS[args.command](args)
    except CLIError as exc:
        _show_traceback(args, exc.__cause__)
        _error(exc)
        return exc.code
    except BrokenPipeError:  # the reader went away (`transfuse explain ... | head`)
        sys.stdout = open(os.devnull, "w")  # keep the interpreter quiet as it flushes
        return EXIT_OK
    except Exception as exc:  # a bug or an error nobody foresaw: still one line
        _show_traceback(args, exc)
        _error(f"unexpected {_describe_exc(exc)}")
        return EXIT_FAILURE


def _interrupted(exc: KeyboardInterrupt) -> int:
    if isinstance(exc, Terminated):
        _error("terminated")
        return EXIT_TERMINATED
    if isinstance(exc, HungUp):
        _error("hung up")
        return EXIT_HANGUP
    _error("interrupted")
    return EXIT_INTERRUPTED


def main(argv=None) -> int:
    """Entry point of the ``transfuse`` command; returns the exit code.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 ok, 1 runtime failure, 2 usage or input error, 129 hung up, 130 interrupted,
        143 terminated.
    """
    try:
        with _signals_as_interrupts():
            try:
                args = build_parser().parse_args(argv)
            except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
                return exc.code if isinstance(exc.code, int) else EXIT_USAGE
            return _run(args)
    except KeyboardInterrupt as exc:  # at any point: start-up, work, clean-up
        try:
            return _interrupted(exc)
        except KeyboardInterrupt:  # a second one while reporting the first
            return _interrupted(exc)


if __name__ == "__main__":
    sys.exit(main())
