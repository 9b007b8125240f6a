using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.CommandLine;
using Microsoft.Extensions.Configuration.Json;

namespace EdgeViT.Host.Service;

/// <summary>
/// Every configuration key must name an option of <see cref="EdgeVitOptions"/> (case-insensitive): a typo such as
/// <c>Http:Url</c> fails start-up (and is refused on reload) with one line naming it and the nearest valid key:
/// <c>unknown setting 'Http:Url' (did you mean 'Http:Urls'?)</c>, followed by where it came from (a file, an
/// EDGEVIT__ variable). Sections owned by others are passed through: <c>Logging:*</c> (log levels),
/// <c>Kestrel:*</c> (certificates, endpoints; Kestrel validates them) and the process's <c>OTEL_*</c> variables.
/// </summary>
public static class ConfigurationKeys
{
    /// <summary>Where the service's own configuration providers start (a DI singleton for the reload check).</summary>
    public sealed record Scope(int FirstProvider, int Count)
    {
        /// <summary>Keys the host wrote into every provider after the start-up check (UseUrls sets 'urls'): not the user's.</summary>
        public HashSet<string> HostWritten { get; } = new(StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>After the host is built: remembers the keys it wrote itself, so a reload does not blame the user's files.</summary>
    public static void NoteHostKeys(IConfigurationRoot config, Scope scope)
    {
        foreach (var provider in config.Providers.Skip(scope.FirstProvider).Take(scope.Count))
            foreach (var key in Keys(provider, null))
                if (!IsKnown(key)) scope.HostWritten.Add(key);
    }

    private static readonly string[] PassThroughSections = ["Logging", "Kestrel"];


    /// <summary>Every valid key, "Section:Key", in declaration order.</summary>
    public static IReadOnlyList<string> Valid { get; } = [.. Collect(typeof(EdgeVitOptions), ""), ModelName];

    /// <summary>The one key below a key that has a value itself (Model is the path): EdgeVitOptions.ModelName.</summary>
    public const string ModelName = "Model:Name";
    private static readonly HashSet<string> ValidSet = new(Valid, StringComparer.OrdinalIgnoreCase);
    private static readonly HashSet<string> Sections = new(Valid.Where(k => k.Contains(':')).SelectMany(SectionsOf), StringComparer.OrdinalIgnoreCase);

    private static IEnumerable<string> Collect(Type type, string prefix)
    {
        foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (!p.CanWrite || p.GetCustomAttribute<System.Text.Json.Serialization.JsonIgnoreAttribute>() is not null) continue;
            if (p.PropertyType.IsClass && p.PropertyType != typeof(string) && p.PropertyType.Namespace == typeof(EdgeVitOptions).Namespace)
                foreach (var k in Collect(p.PropertyType, $"{prefix}{p.Name}:")) yield return k;
            else yield return prefix + p.Name;
        }
    }

    private static IEnumerable<string> SectionsOf(string key)
    {
        for (int i = key.IndexOf(':'); i > 0; i = key.IndexOf(':', i + 1)) yield return key[..i];
    }

    /// <summary>
    /// The first unknown key, as one line; null when all are known. Only the service's own providers are checked
    /// (<paramref name="scope"/>): the host keeps its keys (contentRoot, urls...) in providers before and after them.
    /// </summary>
    public static string? FirstProblem(IConfigurationRoot config, Scope scope)
    {
        foreach (var provider in config.Providers.Skip(scope.FirstProvider).Take(scope.Count))
            foreach (var key in Keys(provider, null))
            {
                if (IsKnown(key) || scope.HostWritten.Contains(key)) continue;
                string line = $"unknown setting '{key}'" + (Nearest(key) is { } near ? $" (did you mean '{near}'?)" : "");
                return line + Origin(provider, key);
            }
        return null;
    }

    private static bool IsKnown(string key) =>
        ValidSet.Contains(key)
        || PassThroughSections.Any(s => key.Equals(s, StringComparison.OrdinalIgnoreCase) || key.StartsWith(s + ":", StringComparison.OrdinalIgnoreCase))
        || key.StartsWith("OTEL_", StringComparison.OrdinalIgnoreCase);

    private static string Origin(IConfigurationProvider provider, string key) => provider switch
    {
        JsonConfigurationProvider json => $" in {json.Source.Path}",
        ServiceHost.PrefixedEnvironmentSource.Provider => $" (environment variable {ServiceHost.EnvironmentPrefix}{key.Replace(":", "__")})",
        CommandLineConfigurationProvider => "",
        _ => "",
    };

    /// <summary>Leaf keys (and empty sections) a provider holds.</summary>
    private static IEnumerable<string> Keys(IConfigurationProvider provider, string? parent)
    {
        foreach (var child in provider.GetChildKeys([], parent).Distinct(StringComparer.OrdinalIgnoreCase))
        {
            string path = parent is null ? child : $"{parent}:{child}";
            if (provider.GetChildKeys([], path).Any())
            {
                if (!Sections.Contains(path) && !IsKnown(path)) { yield return path; continue; } // an unknown section: name it, not each key
                foreach (var k in Keys(provider, path)) yield return k;
            }
            else if (!(Sections.Contains(path) && provider.TryGet(path, out var value) && string.IsNullOrEmpty(value))) yield return path; // "Source": {} is fine
        }
    }

    /// <summary>The valid key a typo most likely meant (by edit distance of the whole key, its last part or its section); null when nothing is close.</summary>
    public static string? Nearest(string key)
    {
        string last = key[(key.LastIndexOf(':') + 1)..];
        string? best = null;
        int bestScore = int.MaxValue;
        for (int index = 0; index < Valid.Count; index++)
        {
            string valid = Valid[index];
            string validLast = valid[(valid.LastIndexOf(':') + 1)..];
            string section = valid.Contains(':') ? valid[..valid.IndexOf(':')] : valid;
            int full = Distance(key, valid), byLast = Distance(last, validLast) + 1, bySection = Distance(key, section) + 1;
            // Ranked by the best of the three; ties broken by the whole key (Http:Url: Http:Urls before Source:Url),
            // or, when only the section matched (--source), by declaration order (its first key).
            int primary = Math.Min(full, Math.Min(byLast, bySection));
            int score = primary * 1000 + (bySection < Math.Min(full, byLast) ? index : full);
            if (score < bestScore) (best, bestScore) = (valid, score);
        }
        return bestScore / 1000 <= Math.Max(3, key.Length / 2) ? best : null;
    }

    /// <summary>Levenshtein distance, case-insensitive.</summary>
    public static int Distance(string a, string b)
    {
        a = a.ToLowerInvariant();
        b = b.ToLowerInvariant();
        var row = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) row[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            int diagonal = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }
        return row[b.Length];
    }

    /// <summary>
    /// `run` arguments are Key=value, --Key value or --Key=value; anything else (a stray word) would be dropped by the
    /// command-line provider without a word, so it is an error here.
    /// </summary>
    public static string? ArgumentProblem(IReadOnlyList<string> args)
    {
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            if (a.StartsWith('-') || a.StartsWith('/'))
            {
                if (!a.Contains('=')) i++; // its value follows
                if (!a.Contains('=') && i >= args.Count) return $"setting '{a}' has no value (use --Key value or Key=value)";
                continue;
            }
            if (!a.Contains('=')) return $"stray argument '{a}' (settings are Key=value or --Key value, e.g. Budget:Target=0.7)";
        }
        return null;
    }
}
