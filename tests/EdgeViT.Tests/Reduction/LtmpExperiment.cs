using EdgeViT.Imaging;
using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Imaging;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Rctp;
using EdgeViT.Kernels.Reduction;
using EdgeViT.Kernels.Reduction.Ltmp;
using Xunit;
using Xunit.Abstractions;

namespace EdgeViT.Tests.Reduction;

/// <summary>
/// Manual experiment (minutes, so skipped in the suite): trains LTMP on the even shared images, measures FLOPs
/// there and top-1/FLOPs on the odd ones, with and without the task gradient. Remove Skip and run with
/// LTMP_N=500 and --filter FullyQualifiedName~LtmpExperiment --logger "console;verbosity=detailed".
/// </summary>
public class LtmpExperiment(ITestOutputHelper output)
{
    [Fact(Skip = "manual experiment, see the summary")]
    public void Sweep()
    {
        var weights = ModelLoader.Load(SharedAssets.ModelSafetensors);
        var c = weights.Config;
        int count = int.Parse(Environment.GetEnvironmentVariable("LTMP_N") ?? "48");
        var synsets = File.ReadAllLines(SharedAssets.Synsets).Select(l => l.Split(' ')[0]).ToList();
        var all = SharedAssets.Images();
        var pre = new ImagePreprocessor();
        (float[] X, int Y) Load(string f)
        {
            var image = ImageDecoder.Decode(f);
            var x = new float[pre.OutputLength];
            pre.Process(image.Pixels, image.Width, image.Height, image.Stride, x);
            return (x, synsets.IndexOf(Path.GetFileName(f).Split('_')[0]));
        }
        var train = all.Where((_, i) => i % 2 == 0).Take(count).Select(Load).ToArray();
        var eval = all.Where((_, i) => i % 2 == 1).Take(count).Select(Load).ToArray();
        var method = new LtmpMethod(weights, train.Length, (i, span) => train[i].X.CopyTo(span), train.Select(t => t.Y).ToArray());
        output.WriteLine($"probe {method.ProbeTime.TotalSeconds:F1}s");
        var fm = new FlopsModel(c);
        using var engine = new VitEngine(weights, new EngineOptions(2));
        var logits = new float[c.Classes];
        double Measure(ITokenReducer r) => train.Average(x => engine.Infer(x.X, logits, r).MultiplyAdds) / fm.Dense;
        (double Acc, double F) Eval(ITokenReducer? r)
        {
            int ok = 0; double f = 0;
            foreach (var (x, y) in eval)
            {
                var st = r is null ? engine.Infer(x, logits) : engine.Infer(x, logits, r);
                f += st.MultiplyAdds / fm.Dense;
                if (Array.IndexOf(logits, logits.Max()) == y) ok++;
            }
            return ((double)ok / eval.Length, f / eval.Length);
        }
        output.WriteLine($"dense eval top1 {Eval(null).Acc:0.###}");
        foreach (bool task in new[] { true, false })
            foreach (double target in new[] { 0.7, 0.5 })
            {
                method.Options = new LtmpOptions(TaskGradient: task);
                var s = method.ForBudget(target, Measure);
                var t = method.LastTraining!;
                var (acc, f) = Eval(s.Reducer);
                output.WriteLine($"cfg task={task} target {target}: calib FLOPs {s.CalibrationFlopsFraction:0.###} train {t.Time.TotalSeconds:F1}s eval top1 {acc:0.###} eval FLOPs {f:0.###}");
                output.WriteLine("   " + s.Setting);
            }
    }
}
