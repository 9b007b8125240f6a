using System.CommandLine;
using System.CommandLine.Parsing;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Host.Commands;

/// <summary>Option factories shared by the commands (each command gets its own instances).</summary>
public static class CommonOptions
{
    public static int MaxThreads => Environment.ProcessorCount * 4;

    public static Option<string> Model(string description) => new("--model", "-m")
    {
        Description = description,
        Required = true,
        HelpName = "FILE",
    };

    public static Option<int> Threads() => IntInRange(new Option<int>("--threads", "-t")
    {
        Description = $"Inference threads (1..{MaxThreads}).",
        DefaultValueFactory = _ => 1,
        HelpName = "T",
    }, 1, MaxThreads);

    public static Option<bool> Json() => new("--json")
    {
        Description = "Print one JSON object as the last stdout line instead of text.",
    };

    public static Option<string?> Simd()
    {
        var option = new Option<string?>("--simd")
        {
            Description = "SIMD level of the EdgeViT kernels: scalar, 128, 256, 512 (default: the best this CPU has).",
            HelpName = "LEVEL",
        };
        option.Validators.Add(result =>
        {
            string? text;
            try { text = result.GetValueOrDefault<string?>(); }
            catch (InvalidOperationException) { return; }
            if (text is null) return;
            try { SimdLevels.EnsureSupported(SimdLevels.Parse(text)); }
            catch (Exception ex) when (ex is ArgumentException or PlatformNotSupportedException)
            {
                result.AddError($"--simd: {ex.Message}");
            }
        });
        return option;
    }

    /// <summary>
    /// Files given as arguments: a "-x"/"--xyz" token that is not an existing file is an unknown option
    /// (System.CommandLine would otherwise take it as one more file name).
    /// </summary>
    public static Argument<string[]> Files(string name, string description)
    {
        var argument = new Argument<string[]>(name) { Description = description, Arity = ArgumentArity.OneOrMore };
        argument.Validators.Add(result =>
        {
            foreach (var token in result.Tokens)
                if (token.Value.Length > 1 && token.Value[0] == '-' && !File.Exists(token.Value))
                {
                    result.AddError($"unrecognized option '{token.Value}'");
                    return;
                }
        });
        return argument;
    }

    public static Option<string> Split() => new("--split")
    {
        Description = "Which images of the folder (file-name order): all, even or odd indices (RCTP calibrates on even, evaluates on odd).",
        DefaultValueFactory = _ => "all",
        HelpName = "all|even|odd",
    };

    public static SimdLevel? ParseSimd(string? text) => text is null ? null : SimdLevels.Parse(text);

    /// <summary>Adds a validator: the value (when given) must lie in [min, max].</summary>
    public static Option<int> IntInRange(Option<int> option, int min, int max = int.MaxValue) =>
        AddRange(option, r => r.GetValueOrDefault<int>(), min, max);

    /// <inheritdoc cref="IntInRange(Option{int}, int, int)"/>
    public static Option<int?> IntInRange(Option<int?> option, int min, int max = int.MaxValue) =>
        AddRange(option, r => r.GetValueOrDefault<int?>(), min, max);

    private static TOption AddRange<TOption>(TOption option, Func<OptionResult, int?> read, int min, int max) where TOption : Option
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count == 0) return; // default value
            int? parsed;
            try { parsed = read(result); }
            catch (InvalidOperationException) { return; } // not an integer: the parser reports that itself
            if (parsed is not int value) return;
            if (value < min || value > max)
                result.AddError(max == int.MaxValue
                    ? $"{option.Name} must be at least {min} (got {value})"
                    : $"{option.Name} must be between {min} and {max} (got {value})");
        });
        return option;
    }
}
