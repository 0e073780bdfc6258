"""Errors raised by rnnfast, and the guard that keeps every other exception a damaged file can provoke (zipfile's
NotImplementedError, zlib.error, OverflowError, RecursionError, h5py's OSError...) from leaving a load as anything
but a FormatError naming the file."""
import contextlib


class FormatError(ValueError):
    """A model file is malformed, truncated, or uses something rnnfast does not implement.

    The message always names the file and the node / layer / key at fault and what was expected.
    Subclasses ValueError so callers that catch bad input generically still catch it.
    """


class MemoryLimitError(ValueError, MemoryError):
    """A model would need more memory than the limit (RNNFAST_MAX_MEMORY, default 4 GiB) for these inputs or at load,
    refused before anything is allocated; or an allocation of the C engine failed (the machine is out of memory).
    Both a ValueError (bad input, like every other refusal) and a MemoryError (what it is about)."""


class DeclaredSizeError(FormatError, MemoryLimitError):
    """A file declares a size that loading it would have to allocate (a tensor, a zip member, a dataset, a pickle
    memo index) over the memory budget (rnnfast.load's max_memory, RNNFAST_MAX_MEMORY), or data that would inflate
    more than any real model's weights do; refused before allocating, naming the file, the entry and the size."""


class InstructionSetError(RuntimeError):
    """RNNFAST_ISA (read when the C engine is first imported) names a kernel table this build did not compile or this CPU cannot
    run; the message lists both sets. Not a silent fallback to another table: the choice was asked for."""


class EngineError(RuntimeError):
    """The C engine refused a call that rnnfast's own checks should have refused first, naming the call and the C
    status: a bug in rnnfast, to be reported."""


class OptionError(TypeError):
    """A load or run option the call cannot take (an unknown name, or one that contradicts the file): a mistake in
    the call, not in the file, so it is a TypeError as for any Python call with a wrong keyword."""


@contextlib.contextmanager
def file_errors(where: str, what: str = "damaged or malformed file", keep_value_errors: bool = False):
    """Inside: the documented errors pass (and plain ValueErrors with keep_value_errors: at the top of a load, where
    they are a bad option value); running out of memory becomes MemoryLimitError, anything else a FormatError, both
    naming `where` (the file, and the entry when known)."""
    try:
        yield
    except (FormatError, MemoryLimitError, OptionError):
        raise
    except ValueError as e:
        if keep_value_errors:
            raise
        raise FormatError(f"{where}: {what} ({type(e).__name__}: {e})") from e
    except RecursionError:
        raise FormatError(f"{where}: {what}: it nests too deeply to read") from None
    except MemoryError as e:
        raise MemoryLimitError(f"{where}: ran out of memory reading it ({type(e).__name__}: {e})") from None
    except Exception as e:  # noqa: BLE001 - the point: nothing undocumented escapes
        raise FormatError(f"{where}: {what} ({type(e).__name__}: {e})") from e


class AssumptionWarning(UserWarning):
    """The file does not store something that changes the result (PyTorch's batch_first or nonlinearity, an old Keras
    file's GRU reset_after, a TF checkpoint's forget_bias...), and the importer assumed the framework's default. The
    message names the file, layer and option and the value assumed; passing the option explicitly silences it, and
    `rnnfast.load(..., strict=True)` (`--strict`) turns it into a FormatError."""
