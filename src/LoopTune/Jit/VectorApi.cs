using System.Reflection;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LoopTune.Jit;

/// <summary>The methods the emitter calls for one vector width of float (4, 8 or 16 lanes), looked up once.
/// Generic methods such as <c>Vector512.Load&lt;T&gt;</c> are closed over float here.</summary>
sealed class VectorApi
{
    public readonly Type Type;
    public readonly MethodInfo Load, Store, Broadcast, Gather, Fma, Multiply, Add, Sum, GetElement, Zero;
    /// <summary>Masked load (masked lanes read as zero) and store (masked lanes left alone); null where the machine has none.
    /// The 512-bit load also takes the vector to merge into (zero here).</summary>
    public readonly MethodInfo? MaskLoad, MaskStore;
    /// <summary>Blend under a constant byte mask (SSE4.1 / AVX); null for 16 lanes, which select under a constant vector
    /// (<see cref="Select"/>, <see cref="MaskOf"/>).</summary>
    public readonly MethodInfo? Blend;
    /// <summary>16 lanes: <c>ConditionalSelect(condition, left, right)</c> over floats, and the int vector of 16 constants
    /// (reinterpreted as floats with <see cref="AsFloat"/>) that is its condition; null for the other widths.</summary>
    public readonly MethodInfo? Select, MaskOf, AsFloat;

    VectorApi(Type statics, Type vector, int width)
    {
        Type = vector;
        var generic = statics.GetMethods(BindingFlags.Public | BindingFlags.Static).Where(m => m.IsGenericMethodDefinition).ToArray();
        MethodInfo Generic(string name, Func<ParameterInfo[], bool> shape) =>
            generic.First(m => m.Name == name && shape(m.GetParameters())).MakeGenericMethod(typeof(float));
        Load = Generic("Load", p => p.Length == 1 && p[0].ParameterType.IsPointer);
        Store = Generic("Store", p => p.Length == 2 && p[1].ParameterType.IsPointer);
        Sum = Generic("Sum", p => p.Length == 1);
        GetElement = Generic("GetElement", p => p.Length == 2);
        Broadcast = statics.GetMethod("Create", [typeof(float)])!;
        Gather = statics.GetMethod("Create", [.. Enumerable.Repeat(typeof(float), width)])!;
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
            Select = Generic("ConditionalSelect", p => p.Length == 3);
            MaskOf = statics.GetMethod("Create", [.. Enumerable.Repeat(typeof(int), 16)]);
            AsFloat = generic.First(m => m.Name == "AsSingle" && m.GetParameters().Length == 1).MakeGenericMethod(typeof(int));
        }
    }

    static readonly VectorApi V128 = new(typeof(Vector128), typeof(Vector128<float>), 4);
    static readonly VectorApi V256 = new(typeof(Vector256), typeof(Vector256<float>), 8);
    static readonly VectorApi V512 = new(typeof(Vector512), typeof(Vector512<float>), 16);

    public static VectorApi Of(int width) => width switch
    {
        4 => V128,
        8 => V256,
        16 => V512,
        _ => throw new ArgumentOutOfRangeException(nameof(width), width, "vector widths are 4, 8 and 16 floats"),
    };

    public static readonly MethodInfo ScalarFma = typeof(MathF).GetMethod(nameof(MathF.FusedMultiplyAdd), [typeof(float), typeof(float), typeof(float)])!;
}
