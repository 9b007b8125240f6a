namespace EdgeViT.Host.Service;

/// <summary>
/// The service's configuration is unusable (unknown key, bad value, missing file, exposed without a key): start-up
/// ends with its one-line message and exit 2; a reload with such a problem is logged and ignored.
/// </summary>
public sealed class ServiceConfigException(string message) : Exception(message);
