"""How many images go into one model call.

``--batch-size auto`` (the default) means one image per call on a CPU: on the benchmark machine
batching made no image faster (1.65, 1.71, 1.66 s per image at batch 1, 2, 4) while every extra
image in a call adds its working memory (model actor peak 0.88 GB at batch 1, 1.67 GB at 4).
On a GPU it means as many images as fit: the first call runs one image and measures the peak
memory it took on each GPU above what was already in use, and later calls take what the memory
left free after loading holds, with headroom, up to ``AUTO_CAP``. Measuring instead of
estimating from the config covers whatever the model, attention kernel, dtype and prompt length
make of it.

Either way, a call that runs out of memory is halved and retried and the smaller size is kept,
so a GPU shared with another job, or a size given by hand that was too large, costs a retry
instead of the batch's images.

Module level stays free of torch: the driver validates ``--batch-size`` with it.
"""

from __future__ import annotations

from saldata.errors import ConfigError

AUTO = "auto"
AUTO_CAP = 32  # the largest batch measured on an H100 (8B model: +9% images/s over 16)
HEADROOM = 0.85  # share of the free memory a batch may plan on: the allocator fragments


def parse_batch_size(value: int | str) -> int | str:
    """``auto`` or a positive number of images, from the command line or a config."""
    if value == AUTO:
        return AUTO
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--batch-size must be a number of images or 'auto', not {value!r}.") from None
    if size < 1:
        raise ConfigError("--batch-size must be at least 1.")
    return size


def fitting_batch(usable_bytes: float, per_image_bytes: float, cap: int = AUTO_CAP) -> int:
    """Images per call that fit ``usable_bytes`` when each takes ``per_image_bytes`` at its peak."""
    if per_image_bytes <= 0:
        return cap
    return max(1, min(cap, int(HEADROOM * usable_bytes // per_image_bytes)))


class BatchSizer:
    """The model actor's batch size: fixed, or probed on the first call; halved on out-of-memory."""

    def __init__(self, requested: int | str, model):
        import torch

        self.gpus = sorted({p.device for p in model.parameters() if p.device.type == "cuda"}, key=str)
        self.probing = requested == AUTO and bool(self.gpus)
        self.size = 1 if requested == AUTO else int(requested)
        self._torch = torch

    def run(self, call, inputs: list):
        """``call(inputs)``; the first call under ``auto`` on GPUs also sets the size for the next ones."""
        if not self.probing:
            return call(inputs)
        cuda = self._torch.cuda
        in_use = {}
        for gpu in self.gpus:
            cuda.synchronize(gpu)
            cuda.reset_peak_memory_stats(gpu)
            in_use[gpu] = cuda.memory_allocated(gpu)
        result = call(inputs)
        sizes = []
        for gpu in self.gpus:
            cuda.synchronize(gpu)
            per_image = (cuda.max_memory_allocated(gpu) - in_use[gpu]) / len(inputs)
            # What a new call can get: the driver's free memory plus what torch's allocator caches.
            free = cuda.mem_get_info(gpu)[0] + cuda.memory_reserved(gpu) - cuda.memory_allocated(gpu)
            sizes.append(fitting_batch(free, per_image))
        self.size = min(sizes)
        self.probing = False
        return result

    def shrink(self, exc: BaseException, attempted: int) -> bool:
        """Whether ``exc`` is running out of memory on a call of more than one image; if so, halve the size.

        The caller retries after leaving its ``except`` block, so the failed call's tensors
        (held by the traceback until then) are gone; ``release`` then returns them to the device.
        """
        from accelerate.utils.memory import should_reduce_batch_size

        if attempted < 2 or not (isinstance(exc, self._torch.OutOfMemoryError) or should_reduce_batch_size(exc)):
            return False
        self.size = max(1, min(self.size, attempted) // 2)
        return True

    def release(self) -> None:
        from accelerate.utils.memory import clear_device_cache

        clear_device_cache(garbage_collection=True)
