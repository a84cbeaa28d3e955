using System.Globalization;
using System.Runtime.Intrinsics.X86;

namespace LoopTune.Jit;

/// <summary>The data caches one core sees, in KiB (null when unknown), and where the figures came from: Linux's sysfs,
/// or the CPUID instruction where sysfs has no cache folder (as in some virtual machines; there the hypervisor's CPUID may
/// report a whole socket's L3).</summary>
public sealed record CacheSizes(int? L1dKib, int? L2Kib, int? L3Kib, string Source)
{
    /// <summary>The caches described under <paramref name="folder"/> (<c>/sys/devices/system/cpu/cpu0/cache</c>: one
    /// <c>index*</c> folder per cache with <c>level</c>, <c>type</c> and <c>size</c>); null when it has none.</summary>
    public static CacheSizes? FromSysfs(string folder)
    {
        if (!Directory.Exists(folder)) return null;
        int? l1 = null, l2 = null, l3 = null;
        foreach (var index in Directory.GetDirectories(folder, "index*"))
        {
            string? Read(string name) => File.Exists(Path.Combine(index, name)) ? File.ReadAllText(Path.Combine(index, name)).Trim() : null;
            if (!int.TryParse(Read("level"), CultureInfo.InvariantCulture, out int level) || ParseSize(Read("size")) is not int kib) continue;
            if (Read("type") == "Instruction") continue;
            switch (level)
            {
                case 1: l1 = kib; break;
                case 2: l2 = kib; break;
                case 3: l3 = kib; break;
            }
        }
        return l1 is null && l2 is null && l3 is null ? null : new CacheSizes(l1, l2, l3, "sysfs");
    }

    /// <summary>A sysfs size in KiB: "48K", "1024K", "32M", or bytes without a unit.</summary>
    public static int? ParseSize(string? text)
    {
        var t = text?.Trim().ToUpperInvariant() ?? "";
        var (digits, scale) = t.EndsWith('K') ? (t[..^1], 1.0) : t.EndsWith('M') ? (t[..^1], 1024.0) : t.EndsWith('G') ? (t[..^1], 1024.0 * 1024) : (t, 1.0 / 1024);
        return long.TryParse(digits, CultureInfo.InvariantCulture, out long n) && n > 0 ? (int)Math.Max(1, n * scale) : null;
    }

    /// <summary>The caches CPUID reports: leaf 4 (Intel) or 0x8000001D (AMD), else AMD's 0x80000005/6; null off x86.</summary>
    public static CacheSizes? FromCpuid()
    {
        if (!X86Base.IsSupported) return null;
        int? l1 = null, l2 = null, l3 = null;
        foreach (int leaf in new[] { 4, unchecked((int)0x8000001D) })
        {
            if ((uint)X86Base.CpuId(leaf & unchecked((int)0x80000000), 0).Eax < (uint)leaf) continue;
            for (int sub = 0; sub < 8; sub++)
            {
                var (a, b, c, _) = X86Base.CpuId(leaf, sub);
                int type = a & 31, level = (a >> 5) & 7;
                if (type == 0) break;
                if (type == 2) continue; // instruction cache
                long bytes = (long)(((b >> 22) & 0x3ff) + 1) * (((b >> 12) & 0x3ff) + 1) * ((b & 0xfff) + 1) * ((long)(uint)c + 1);
                int kib = (int)(bytes / 1024);
                if (level == 1) l1 = kib;
                else if (level == 2) l2 = kib;
                else if (level == 3) l3 = kib;
            }
            if (l1 is not null) return new CacheSizes(l1, l2, l3, "cpuid");
        }
        if ((uint)X86Base.CpuId(unchecked((int)0x80000000), 0).Eax < 0x80000006) return null;
        var (_, _, c5, _) = X86Base.CpuId(unchecked((int)0x80000005), 0);
        var (_, _, c6, d6) = X86Base.CpuId(unchecked((int)0x80000006), 0);
        int? Positive(int v) => v > 0 ? v : null;
        return new CacheSizes(Positive((int)((uint)c5 >> 24)), Positive((int)((uint)c6 >> 16)), Positive((int)((uint)d6 >> 18) * 512), "cpuid");
    }

    /// <summary>This machine's: sysfs, else CPUID, else unknown.</summary>
    public static CacheSizes Current { get; } =
        FromSysfs("/sys/devices/system/cpu/cpu0/cache") ?? FromCpuid() ?? new CacheSizes(null, null, null, "unknown");
}
