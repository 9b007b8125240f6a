using System.ComponentModel;
using System.Diagnostics;

namespace EdgeViT.Capture;

/// <summary>The one way a source ends the capture program it started (ffmpeg, rpicam-vid).</summary>
internal static class ChildProcess
{
    /// <summary>Kills the program and its children if still running, waits briefly for it, and disposes it.</summary>
    public static void Stop(Process? p)
    {
        if (p is null) return;
        try
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit(2000);
            }
        }
        catch (InvalidOperationException) { } // it exited between the check and the kill
        catch (Win32Exception) { }
        p.Dispose();
    }
}
