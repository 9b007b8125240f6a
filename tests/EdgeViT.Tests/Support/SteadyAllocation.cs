namespace EdgeViT.Tests.Support;

/// <summary>
/// Bytes a piece of code allocates on the calling thread once it is warm. Tiered JIT compiles (and OSR-compiles a
/// hot loop) on the calling thread at unpredictable moments, and those compilations count as that thread's
/// allocations; so the code is measured a few times and the least is returned. A real per-call allocation shows
/// up in every measurement, a one-off compilation in one only.
/// </summary>
public static class SteadyAllocation
{
    public static long Bytes(Action action, int measurements = 4)
    {
        action(); // first call: static initialisation, plans, buffers
        long least = long.MaxValue;
        for (int i = 0; i < measurements && least > 0; i++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            action();
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        return least;
    }
}
