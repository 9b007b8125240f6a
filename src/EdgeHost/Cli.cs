using System.CommandLine;
using EdgeViT.Host.Commands;

namespace EdgeViT.Host;

/// <summary>
/// The edgevit command line. <see cref="Run"/> is the whole program (Program.cs only forwards to it), so tests
/// can run it in-process with their own writers. Every failure ends as exactly one stderr line
/// "edgevit: error: ..." and a non-zero exit code (see <see cref="ExitCodes"/>); never a stack trace unless
/// EDGEVIT_DEBUG=1.
/// </summary>
public static class Cli
{
    /// <param name="runDefaults">Configuration locations for `run` (null: the real ones; tests pass hermetic ones).</param>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, Service.ServiceHostSettings? runDefaults = null)
    {
        try
        {
            var root = BuildRootCommand(stdout, runDefaults);
            var parse = root.Parse(args);
            // Help and version clear parse errors (so "predict --help" works without --model); anything else with
            // errors is a usage error, reported as one line instead of System.CommandLine's help dump.
            if (parse.Errors.Count > 0 && parse.Action is not { ClearsParseErrors: true })
                return ErrorReporter.Usage(stderr, parse.UnmatchedTokens.Count > 0
                    ? $"unrecognized command or argument '{parse.UnmatchedTokens[0]}' (see edgevit --help)"
                    : parse.Errors[0].Message);

            var invocation = new InvocationConfiguration
            {
                Output = stdout,
                Error = stderr,
                EnableDefaultExceptionHandler = false,
                ProcessTerminationTimeout = null,
            };
            int code = parse.Invoke(invocation);
            stdout.Flush();
            return code;
        }
        catch (Exception ex)
        {
            try { stdout.Flush(); } catch { /* the error line below matters more */ }
            return ErrorReporter.Report(stderr, ex);
        }
    }

    public static RootCommand BuildRootCommand(TextWriter stdout, Service.ServiceHostSettings? runDefaults = null)
    {
        var root = new RootCommand("EdgeViT: Vision Transformer (DeiT/ViT) inference for ARM edge boards.");
        root.Add(PredictCommand.Create(stdout));
        root.Add(EvalCommand.Create(stdout));
#if !EDGEVIT_DEVICE // research commands: the developer build only (the device build has no ONNX Runtime or plotting)
        root.Add(BenchCommand.Create(stdout));
#endif
        root.Add(CalibrateCommand.Create(stdout));
        root.Add(QuantizeCommand.Create(stdout));
#if !EDGEVIT_DEVICE
        root.Add(CompareCommand.Create(stdout));
#endif
        root.Add(ExplainCommand.Create(stdout));
        root.Add(Service.RunCommand.Create(stdout, runDefaults));
        return root;
    }
}
