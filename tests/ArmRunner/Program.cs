using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using Xunit;

// edgevit-test-runner [PREFIX...]: runs [Fact] and [Theory] (InlineData/MemberData) tests of the
// test assembly whose full class name (namespace.Class) starts with a prefix; prints one line per failure and a closing
// "N passed, N failed" line; exits 1 on any failure.
var prefixes = args.Length > 0 ? args : ["EdgeViT.Tests.Kernels"];
var assembly = typeof(EdgeViT.Tests.SharedAssets).Assembly;
int passed = 0, failed = 0;
Console.WriteLine($"edgevit-test-runner: {RuntimeInformation.ProcessArchitecture}, SIMD levels: {string.Join(", ", EdgeViT.Kernels.Simd.SimdLevels.Supported)}");
var sw = Stopwatch.StartNew();
foreach (var type in assembly.GetTypes().Where(t => t.IsClass && !t.IsAbstract && prefixes.Any(p => (t.FullName ?? "").StartsWith(p, StringComparison.Ordinal))).OrderBy(t => t.FullName))
{
    foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static).OrderBy(m => m.Name))
    {
        var fact = method.GetCustomAttribute<FactAttribute>();
        if (fact is null || fact.Skip is not null) continue;
        foreach (var data in Cases(type, method))
        {
            string name = $"{type.Name}.{method.Name}({string.Join(", ", data)})";
            try
            {
                object? instance = method.IsStatic ? null : Activator.CreateInstance(type);
                var result = method.Invoke(instance, data);
                if (result is Task task) task.GetAwaiter().GetResult();
                (instance as IDisposable)?.Dispose();
                passed++;
            }
            catch (Exception e)
            {
                var inner = e is TargetInvocationException { InnerException: { } ie } ? ie : e;
                Console.WriteLine($"FAIL {name}: {inner.GetType().Name}: {inner.Message.ReplaceLineEndings(" ")}");
                failed++;
            }
        }
    }
}
Console.WriteLine($"({sw.Elapsed.TotalSeconds:F0} s)");
Console.WriteLine($"{passed} passed, {failed} failed");
return failed == 0 && passed > 0 ? 0 : 1;

static IEnumerable<object?[]> Cases(Type type, MethodInfo method)
{
    if (method.GetCustomAttribute<TheoryAttribute>() is null) { yield return []; yield break; }
    foreach (var inline in method.GetCustomAttributes<InlineDataAttribute>())
        foreach (var row in inline.GetData(method)) yield return row;
    foreach (var member in method.GetCustomAttributes<MemberDataAttribute>())
    {
        var source = member.MemberType ?? type;
        var m = source.GetMember(member.MemberName, BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static).Single();
        var value = m switch
        {
            MethodInfo mi => mi.Invoke(null, member.Parameters),
            PropertyInfo pi => pi.GetValue(null),
            FieldInfo fi => fi.GetValue(null),
            _ => null,
        };
        foreach (var row in (IEnumerable<object?[]>)value!) yield return row;
    }
}
