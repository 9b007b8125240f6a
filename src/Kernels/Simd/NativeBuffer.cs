using System.Runtime.InteropServices;

namespace EdgeViT.Kernels.Simd;

/// <summary>
/// A 64-byte-aligned, zeroed native float buffer: cache-line aligned so packed panels and activations load
/// aligned, and pinned by construction so kernels can hold raw pointers across calls.
/// </summary>
public sealed unsafe class NativeBuffer : IDisposable
{
    public float* Pointer { get; private set; }
    public long Length { get; }

    public NativeBuffer(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        nuint bytes = (nuint)Math.Max(1, length) * sizeof(float);
        Pointer = (float*)NativeMemory.AlignedAlloc(bytes, 64);
        NativeMemory.Clear(Pointer, bytes);
        GC.AddMemoryPressure((long)bytes);
    }

    public Span<float> Span => new(Pointer, checked((int)Length));

    public void Dispose()
    {
        if (Pointer == null) return;
        NativeMemory.AlignedFree(Pointer);
        GC.RemoveMemoryPressure(Math.Max(1, Length) * sizeof(float));
        Pointer = null;
        GC.SuppressFinalize(this);
    }

    ~NativeBuffer() => Dispose();
}
