namespace LoopTune.Learning.Nn;

/// <summary>A row-major float matrix; a batch is one row per sample. <see cref="Data"/> is the storage itself
/// (element (r, c) is <c>Data[r * Cols + c]</c>), so wrapping an array shares it.</summary>
public sealed class Matrix
{
    /// <summary>A <paramref name="rows"/> x <paramref name="cols"/> matrix of zeros.</summary>
    public Matrix(int rows, int cols) : this(rows, cols, new float[Size(rows, cols)]) { }

    /// <summary>Wraps <paramref name="data"/> (not copied); its length must be rows * cols.</summary>
    public Matrix(int rows, int cols, float[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Length != Size(rows, cols))
            throw new ArgumentException($"a {rows}x{cols} matrix needs {(long)rows * cols} floats, got {data.Length}", nameof(data));
        (Rows, Cols, Data) = (rows, cols, data);
    }

    public int Rows { get; }
    public int Cols { get; }
    public float[] Data { get; }

    public float this[int r, int c]
    {
        get => Data[Index(r, c)];
        set => Data[Index(r, c)] = value;
    }

    /// <summary>Row <paramref name="r"/> as a span over <see cref="Data"/>.</summary>
    public Span<float> Row(int r)
    {
        if ((uint)r >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(r), r, $"row of a {Rows}x{Cols} matrix");
        return Data.AsSpan(r * Cols, Cols);
    }

    /// <summary>A deep copy.</summary>
    public Matrix Clone() => new(Rows, Cols, (float[])Data.Clone());

    /// <summary>The transpose, as a new matrix.</summary>
    public Matrix Transpose()
    {
        var t = new Matrix(Cols, Rows);
        for (int r = 0; r < Rows; r++)
            for (int c = 0; c < Cols; c++) t.Data[c * Rows + r] = Data[r * Cols + c];
        return t;
    }

    public override string ToString() => $"Matrix {Rows}x{Cols}";

    int Index(int r, int c)
    {
        if ((uint)r >= (uint)Rows || (uint)c >= (uint)Cols) throw new ArgumentOutOfRangeException(null, $"({r}, {c}) is outside a {Rows}x{Cols} matrix");
        return r * Cols + c;
    }

    static int Size(int rows, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        return checked(rows * cols);
    }

    internal static void CheckShape(Matrix m, int rows, int cols, string what)
    {
        ArgumentNullException.ThrowIfNull(m, what);
        if (m.Rows != rows || m.Cols != cols) throw new ArgumentException($"{what} is {m.Rows}x{m.Cols}, expected {rows}x{cols}", what);
    }
}

/// <summary>A trainable tensor: <see cref="Value"/> and <see cref="Grad"/> have the product of <see cref="Shape"/>
/// elements. Layers add (+=) into <see cref="Grad"/> in Backward; an optimizer zeroes it.</summary>
public sealed class Parameter
{
    /// <summary>A parameter of zeros (value and gradient).</summary>
    public Parameter(string name, int[] shape)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(shape);
        Name = name;
        Shape = (int[])shape.Clone();
        int n = Elements(Shape);
        (Value, Grad) = (new float[n], new float[n]);
    }

    public string Name { get; }
    public int[] Shape { get; }
    public float[] Value { get; }
    public float[] Grad { get; }

    public override string ToString() => $"{Name} {ShapeText(Shape)}";

    /// <summary>The number of elements of a shape (1 for the scalar shape []).</summary>
    public static int Elements(IReadOnlyList<int> shape)
    {
        int n = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape {ShapeText(shape)}", nameof(shape));
            n = checked(n * d);
        }
        return n;
    }

    /// <summary>A shape as "[a, b]".</summary>
    public static string ShapeText(IEnumerable<int> shape) => "[" + string.Join(", ", shape) + "]";
}
