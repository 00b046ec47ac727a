"""Where and how the training loss is computed in slices: shared by the loss itself (gptwiz.model.loss) and
by the memory estimate (gptwiz.planning.memory), and free of torch so that the estimate stays quick to import."""

from __future__ import annotations

# glibc malloc serves an allocation above its mmap threshold with a fresh mapping that goes back to
# the OS when freed; below it, from the heap, which keeps its pages. The threshold starts at 128 KiB
# and rises to the size of each mmapped block freed, up to 32 MiB: after the first training step,
# every tensor under 32 MiB lives on the heap, and the heap's resident size is its high-water mark.
GLIBC_MMAP_MAX = 32 * 2**20


def slice_rows(vocab_size: int) -> int:
    """Rows per slice of the loss: as many as keep one float32 slice of logits under glibc's mmap
    ceiling (so that its buffers are heap memory, reused from slice to slice), a multiple of 8."""
    return max(8, (GLIBC_MMAP_MAX - 1) // (4 * vocab_size) // 8 * 8)


def uses_sliced_loss(device_type: str, compiled: bool) -> bool:
    """Whether training computes the loss in slices: in eager mode on a CPU. Under torch.compile
    inductor fuses the textbook loss itself, and on CUDA the caching allocator and fast kernels leave
    nothing to gain."""
    return device_type == "cpu" and not compiled
