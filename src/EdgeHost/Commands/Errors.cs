using EdgeViT.Imaging;
using EdgeViT.Kernels.Model;
#if !EDGEVIT_DEVICE
using Microsoft.ML.OnnxRuntime;
#endif

namespace EdgeViT.Host.Commands;

public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>Bad input: a missing or unreadable file or folder, a corrupt model, an image that does not decode, an unknown synset.</summary>
    public const int InputError = 1;
    /// <summary>Bad command line: unknown option, missing required option, out-of-range value.</summary>
    public const int UsageError = 2;
}

/// <summary>A bad option value or combination found after parsing; exit code 2. The message is one line.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>Input that cannot be used (file, folder, synsets, ...); exit code 1. The message is one line naming the culprit.</summary>
public sealed class InputException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Turns any exception into the one stderr line and the exit code.</summary>
public static class ErrorReporter
{
    public const string Prefix = "edgevit: error: ";

    public static bool Debug => Environment.GetEnvironmentVariable("EDGEVIT_DEBUG") == "1";

    public static int Usage(TextWriter stderr, string message)
    {
        WriteLine(stderr, message);
        return ExitCodes.UsageError;
    }

    public static int Report(TextWriter stderr, Exception ex)
    {
        ex = Unwrap(ex);
        var (code, message) = Classify(ex);
        WriteLine(stderr, message);
        if (Debug) { stderr.WriteLine(ex.ToString()); stderr.Flush(); }
        return code;
    }

    public static (int Code, string Message) Classify(Exception ex) => ex switch
    {
        UsageException => (ExitCodes.UsageError, ex.Message),
        PlatformNotSupportedException => (ExitCodes.UsageError, ex.Message),
        InputException or ModelFormatException or ImageDecodeException => (ExitCodes.InputError, ex.Message),
        FileNotFoundException f => (ExitCodes.InputError,
            f.FileName is { Length: > 0 } name && !f.Message.Contains(name, StringComparison.Ordinal) ? $"file not found: {name}" : f.Message),
        DirectoryNotFoundException or UnauthorizedAccessException or IOException => (ExitCodes.InputError, ex.Message),
#if !EDGEVIT_DEVICE
        OnnxRuntimeException => (ExitCodes.InputError, "ONNX Runtime: " + ex.Message),
#endif
        OutOfMemoryException => (ExitCodes.InputError, "out of memory: " + ex.Message),
        _ => (ExitCodes.InputError, $"unexpected {ex.GetType().Name}: {ex.Message}" + (Debug ? "" : " (set EDGEVIT_DEBUG=1 for details)")),
    };

    private static Exception Unwrap(Exception ex)
    {
        while (true)
        {
            Exception? inner = ex switch
            {
                AggregateException { InnerExceptions.Count: 1 } agg => agg.InnerExceptions[0],
                System.Reflection.TargetInvocationException tie => tie.InnerException,
                TypeInitializationException tie => tie.InnerException,
                _ => null,
            };
            if (inner is null) return ex;
            ex = inner;
        }
    }

    /// <summary>Writes "edgevit: error: message" as exactly one line (newlines in the message are folded).</summary>
    public static void WriteLine(TextWriter stderr, string message)
    {
        stderr.WriteLine(Prefix + OneLine(message));
        stderr.Flush();
    }

    public static string OneLine(string message)
    {
        var parts = message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return parts.Length == 0 ? "(no message)" : string.Join(" ", parts);
    }
}
