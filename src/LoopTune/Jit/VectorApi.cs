using System.Reflection;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LoopTune.Jit;

/// <summary>The methods the emitter calls for one vector width of float (4, 8 or 16 lanes), looked up once.
/// Generic methods such as <c>Vector512.Sum&lt;T&gt;</c> are closed over float here. Whole vectors are loaded and stored
/// with <c>ldobj</c> and <c>stobj</c> of <see cref="Type"/>, not with calls.</summary>
sealed class VectorApi
{
    public readonly Type Type;
    public readonly MethodInfo Broadcast, Gather, Fma, Multiply, Add, Sum, GetElement, Zero, Max;
    /// <summary>Masked load (masked lanes read as zero) and store (masked lanes left alone); null where the machine has none.
    /// The 512-bit load also takes the vector to merge into (zero here).</summary>
    public readonly MethodInfo? MaskLoad, MaskStore;
    /// <summary>Blend under a constant byte mask (SSE4.1 / AVX); null for 16 lanes, which select under a constant vector
    /// (<see cref="Select"/>, <see cref="MaskOf"/>).</summary>
    public readonly MethodInfo? Blend;
    /// <summary>16 lanes: <c>ConditionalSelect(condition, left, right)</c> over floats, and the int vector of 16 constants
    /// (reinterpreted as floats with <see cref="AsFloat"/>) that is its condition; null for the other widths.</summary>
    public readonly MethodInfo? Select, MaskOf, AsFloat;

    /// <summary>The methods of one width; the <c>Create</c> overloads come as delegates' methods (<paramref name="broadcast"/>:
    /// <c>Create(float)</c>, <paramref name="gather"/>: <c>Create</c> of <paramref name="width"/> floats, <paramref name="maskOf"/>:
    /// <c>Create</c> of 16 ints, 16 lanes only), which the compiler resolves: looking them up by signature loaded every
    /// vector type of every overload, some 30 ms of a process's first compilation.</summary>
    VectorApi(Type statics, Type vector, int width, MethodInfo broadcast, MethodInfo gather, MethodInfo? maskOf = null)
    {
        Type = vector;
        var openVector = vector.GetGenericTypeDefinition();
        MethodInfo Generic(string name, Type element, params Type[] parameters) => statics.GetMethod(name, 1, BindingFlags.Public | BindingFlags.Static, parameters)!.MakeGenericMethod(element);
        var t = openVector.MakeGenericType(Type.MakeGenericMethodParameter(0)); // Vector512<T> of the method's T
        Sum = Generic("Sum", typeof(float), t);
        Max = Generic("Max", typeof(float), t, t);
        GetElement = Generic("GetElement", typeof(float), t, typeof(int));
        (Broadcast, Gather, MaskOf) = (broadcast, gather, maskOf);
        Fma = statics.GetMethod("FusedMultiplyAdd", [vector, vector, vector])!;
        Multiply = vector.GetMethod("op_Multiply", [vector, vector])!;
        Add = vector.GetMethod("op_Addition", [vector, vector])!;
        Zero = vector.GetProperty("Zero")!.GetMethod!;
        var x86 = width == 16 ? typeof(Avx512F) : typeof(Avx);
        MaskLoad = x86.GetMethod("MaskLoad", width == 16 ? [typeof(float*), vector, vector] : [typeof(float*), vector]);
        MaskStore = x86.GetMethod("MaskStore", [typeof(float*), vector, vector]);
        Blend = width switch
        {
            8 => typeof(Avx).GetMethod("Blend", [vector, vector, typeof(byte)]),
            4 => typeof(Sse41).GetMethod("Blend", [vector, vector, typeof(byte)]),
            _ => null,
        };
        if (width == 16)
        {
            Select = Generic("ConditionalSelect", typeof(float), t, t, t);
            AsFloat = Generic("AsSingle", typeof(int), t);
        }
    }

    // each width's on its first use
    static readonly Lazy<VectorApi> V128 = new(() => new(typeof(Vector128), typeof(Vector128<float>), 4,
        new Func<float, Vector128<float>>(Vector128.Create).Method, new Func<float, float, float, float, Vector128<float>>(Vector128.Create).Method));
    static readonly Lazy<VectorApi> V256 = new(() => new(typeof(Vector256), typeof(Vector256<float>), 8,
        new Func<float, Vector256<float>>(Vector256.Create).Method,
        new Func<float, float, float, float, float, float, float, float, Vector256<float>>(Vector256.Create).Method));
    static readonly Lazy<VectorApi> V512 = new(() => new(typeof(Vector512), typeof(Vector512<float>), 16,
        new Func<float, Vector512<float>>(Vector512.Create).Method,
        new Func<float, float, float, float, float, float, float, float, float, float, float, float, float, float, float, float, Vector512<float>>(Vector512.Create).Method,
        new Func<int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, Vector512<int>>(Vector512.Create).Method));

    public static VectorApi Of(int width) => width switch
    {
        4 => V128.Value,
        8 => V256.Value,
        16 => V512.Value,
        _ => throw new ArgumentOutOfRangeException(nameof(width), width, "vector widths are 4, 8 and 16 floats"),
    };

    /// <summary>x86's prefetch into every cache level (<c>prefetcht0</c>), for <see cref="PrefetchOp"/>.</summary>
    public static readonly MethodInfo Prefetch = typeof(System.Runtime.Intrinsics.X86.Sse).GetMethod(nameof(System.Runtime.Intrinsics.X86.Sse.Prefetch0), [typeof(void*)])!;

    public static readonly MethodInfo ScalarFma = typeof(MathF).GetMethod(nameof(MathF.FusedMultiplyAdd), [typeof(float), typeof(float), typeof(float)])!;

    /// <summary><c>MathF.Max(x, y)</c>, the Relu of a scalar (with 0).</summary>
    public static readonly MethodInfo ScalarMax = typeof(MathF).GetMethod(nameof(MathF.Max), [typeof(float), typeof(float)])!;
}
