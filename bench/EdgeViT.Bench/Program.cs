using EdgeViT.Kernels.Simd;
using EdgeViT.Bench;

// edgevit-bench gemm [--threads T] [--simd LEVEL] | int8 [--threads T] [--min] | models [--threads 1,2] | threads [--model FILE] [--threads 1,2] [--iterations N]
string cmd = args.Length > 0 ? args[0] : "gemm";
var level = Arg("--simd") is { } s ? SimdLevels.Parse(s) : SimdLevels.Best;
switch (cmd)
{
    case "gemm":
        Console.WriteLine("| measure | SIMD | value |\n|---|---|---|");
        double peak = PeakBench.Measure(Console.Out);
        Console.WriteLine();
        GemmBench.Run(ArgInt("--threads", 1), level, Console.Out, peak);
        break;
    case "models":
        ModelBench.Run(Arg("--threads") is { } t ? t.Split(',').Select(int.Parse).ToArray() : [1, 2], level,
            (Arg("--sizes") ?? "tiny,small,base").Split(','), Console.Out);
        break;
    case "int8": // int8 [--threads T] [--min]: --min reports each GEMM's fastest of 200 runs (robust on a loaded machine)
        Int8GemmBench.Run(ArgInt("--threads", 1), Console.Out, args.Contains("--min"));
        Console.WriteLine();
        Int8Profile.Run(ArgInt("--threads", 1), level, Console.Out);
        break;
    case "threads": // threads --model FILE [--threads 1,2] [--iterations N] [--pace-ms P]
        ThreadsBench.Run(Arg("--model") ?? "../shared/models/deit_tiny_patch16_224.safetensors",
            (Arg("--threads") ?? "1,2").Split(',').Select(int.Parse).ToArray(), level, ArgInt("--iterations", 200), Console.Out,
            ArgInt("--pace-ms", 0));
        break;
    case "panel": // panel TRACE.csv TARGET_MS LOAD_FROM_S LOAD_TO_S OUT.png
        PanelRender.Run(args[1], double.Parse(args[2]), double.Parse(args[3]), double.Parse(args[4]), args[5]);
        break;
    default: Console.Error.WriteLine($"edgevit-bench: error: unknown command '{cmd}' (gemm, models, int8, threads, panel)"); return 2;
}
return 0;

string? Arg(string name) { int i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : null; }
int ArgInt(string name, int dflt) => Arg(name) is { } v ? int.Parse(v) : dflt;
