using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Options;

namespace EdgeViT.Host.Service;

// Data annotations whose messages carry the offending value; EdgeVitOptionsValidator prefixes the key path, giving
// one line such as "Budget:TargetP95Ms must be > 0 (got -5)".

/// <summary>An enum value that names a member (the binder also accepts numbers and comma lists).</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class DefinedEnumAttribute : ValidationAttribute
{
    protected override ValidationResult? IsValid(object? value, ValidationContext context)
    {
        if (value is null || Enum.IsDefined(value.GetType(), value)) return ValidationResult.Success;
        return new ValidationResult($"must be one of {EnumChoices(value.GetType())} (got '{value}')", [context.MemberName!]);
    }

    public static string EnumChoices(Type t) => string.Join("|", Enum.GetNames(t).Select(n => n.ToLowerInvariant()));
}

/// <summary>A whole-number range, for int and long options alike.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class IntRangeAttribute(long min, long max) : ValidationAttribute
{
    protected override ValidationResult? IsValid(object? value, ValidationContext context)
    {
        if (value is null) return ValidationResult.Success;
        long v = Convert.ToInt64(value, CultureInfo.InvariantCulture);
        if (v >= min && v <= max) return ValidationResult.Success;
        string rule = v < min ? (min == 1 ? "must be > 0" : $"must be >= {min}") : $"must be <= {max}";
        return new ValidationResult($"{rule} (got {v})", [context.MemberName!]);
    }
}

[AttributeUsage(AttributeTargets.Property)]
public sealed class DoubleRangeAttribute(double min, double max) : ValidationAttribute
{
    public bool MinExclusive { get; set; }

    protected override ValidationResult? IsValid(object? value, ValidationContext context)
    {
        if (value is null) return ValidationResult.Success;
        double v = Convert.ToDouble(value, CultureInfo.InvariantCulture);
        bool aboveMin = MinExclusive ? v > min : v >= min;
        if (double.IsFinite(v) && aboveMin && v <= max) return ValidationResult.Success;
        string got = v.ToString(CultureInfo.InvariantCulture);
        string rule = !double.IsFinite(v) ? "must be a finite number"
            : !aboveMin ? $"must be {(MinExclusive ? ">" : ">=")} {min.ToString(CultureInfo.InvariantCulture)}"
            : $"must be <= {max.ToString(CultureInfo.InvariantCulture)}";
        return new ValidationResult($"{rule} (got {got})", [context.MemberName!]);
    }
}

/// <summary>
/// Validates <see cref="EdgeVitOptions"/>: the data annotations of every section (recursively, with the key path
/// "Section:Key" in each message) plus the rules that span keys. The default-named options fail start-up
/// (ValidateOnStart); the <see cref="EdgeVitOptions.Live"/> copy is checked by the reload handler itself, so a bad
/// edit of a watched file is logged and ignored instead of throwing from the file watcher.
/// </summary>
public sealed class EdgeVitOptionsValidator : IValidateOptions<EdgeVitOptions>
{
    public ValidateOptionsResult Validate(string? name, EdgeVitOptions options)
    {
        if (name == EdgeVitOptions.Live) return ValidateOptionsResult.Skip;
        var failures = Check(options);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Every problem as "Key:Path message", in declaration order.</summary>
    public static List<string> Check(EdgeVitOptions o)
    {
        var failures = new List<string>();
        failures.AddRange(o.BindingErrors);
        Annotations(o, "", failures);

        if (o.Source.Kind == SourceKind.Folder && string.IsNullOrWhiteSpace(o.Source.Folder))
            failures.Add("Source:Folder is required when Source:Kind is folder");
        if (o.Source.Rotation is not (0 or 180))
            failures.Add($"Source:Rotation must be 0 or 180 (got {o.Source.Rotation})");
        if (o.Source.Kind == SourceKind.Libcamera && (o.Source.Width <= 0 || o.Source.Height <= 0))
            failures.Add($"Source:Width and Source:Height are required for Source:Kind libcamera (got {o.Source.Width}x{o.Source.Height})");
        if (o.Source.Kind == SourceKind.Ffmpeg && string.IsNullOrWhiteSpace(o.Source.Url))
            failures.Add("Source:Url is required when Source:Kind is ffmpeg");
        if (o.Source.Kind == SourceKind.None && o.Trigger.Mode != TriggerMode.Http)
            failures.Add($"Source:Kind none needs Trigger:Mode http (got '{Name(o.Trigger.Mode)}')");
        if (o.Trigger.Mode == TriggerMode.Gpio && o.Trigger.Gpio.Pin < 0)
            failures.Add($"Trigger:Gpio:Pin is required when Trigger:Mode is gpio (got {o.Trigger.Gpio.Pin})");
        if (o.Trigger.Gpio.OutputPin >= 0 && string.IsNullOrWhiteSpace(o.Trigger.Gpio.OutputClass))
            failures.Add("Trigger:Gpio:OutputClass is required when Trigger:Gpio:OutputPin is set");
        if (o.Results.Sink == ResultsSinkKind.File && string.IsNullOrWhiteSpace(o.Results.Path))
            failures.Add("Results:Path is required when Results:Sink is file");
        foreach (var url in o.Http.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            if (!Uri.TryCreate(url.Replace("://*", "://localhost").Replace("://+", "://localhost"), UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                failures.Add($"Http:Urls has an invalid URL (got '{url}')");
        failures.AddRange(o.Mqtt.Check());
        if (failures.Count == 0 && HttpExposure.Problem(o.Http) is { } exposed) failures.Add(exposed);
        return failures;
    }

    /// <summary>An enum value as configuration spells it.</summary>
    public static string Name<T>(T value) where T : struct, Enum => value.ToString().ToLowerInvariant();

    /// <summary>The data annotations of one section, messages prefixed with <paramref name="prefix"/> ("Budget:").</summary>
    public static List<string> CheckSection(object section, string prefix)
    {
        var failures = new List<string>();
        Annotations(section, prefix, failures);
        return failures;
    }

    private static void Annotations(object section, string prefix, List<string> failures)
    {
        var results = new List<ValidationResult>();
        Validator.TryValidateObject(section, new ValidationContext(section), results, validateAllProperties: true);
        foreach (var r in results)
        {
            string member = r.MemberNames.FirstOrDefault() ?? "";
            failures.Add($"{prefix}{member} {r.ErrorMessage}");
        }
        foreach (var p in section.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
            if (p.PropertyType.IsClass && p.PropertyType != typeof(string) && p.PropertyType.Namespace == typeof(EdgeVitOptions).Namespace
                && p.GetValue(section) is { } child)
                Annotations(child, $"{prefix}{p.Name}:", failures);
    }
}
