namespace LoopTune.Learning.Nn;

/// <summary>Adam hyper-parameters. <paramref name="MaxGradNorm"/> clips the global L2 norm over all parameters'
/// gradients (infinity = no clipping).</summary>
public sealed record AdamOptions(
    double LearningRate = 2.5e-4, double Beta1 = 0.9, double Beta2 = 0.999, double Epsilon = 1e-8,
    double MaxGradNorm = double.PositiveInfinity)
{
    internal void Validate()
    {
        if (!(LearningRate >= 0) || double.IsInfinity(LearningRate)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "must be finite and >= 0");
        if (!(Beta1 >= 0 && Beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(Beta1), Beta1, "must be in [0, 1)");
        if (!(Beta2 >= 0 && Beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(Beta2), Beta2, "must be in [0, 1)");
        if (!(Epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, "must be > 0");
        if (!(MaxGradNorm > 0)) throw new ArgumentOutOfRangeException(nameof(MaxGradNorm), MaxGradNorm, "must be > 0");
    }
}

/// <summary>
/// Adam (Kingma and Ba 2015) with bias correction, as torch.optim.Adam: m = b1 m + (1 - b1) g,
/// v = b2 v + (1 - b2) g^2, p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), after clipping the global
/// gradient norm as torch.nn.utils.clip_grad_norm_ (grads *= max / (norm + 1e-6) when norm &gt; max).
/// The update is computed in float per element, each operation rounded in torch's order (<see cref="Vec.AdamStep"/>;
/// in double before 2026-12-07, whose two divisions and square root a step took 0.19 ms of a batch-64 update of 1 ms).
/// </summary>
public sealed class Adam
{
    readonly Parameter[] parameters;
    readonly float[][] m, v;
    AdamOptions options;

    /// <summary>An optimizer over <paramref name="parameters"/> (a parameter listed twice is updated once;
    /// two different parameters with one name are an <see cref="ArgumentException"/>, as the state is saved by name).</summary>
    public Adam(IReadOnlyList<Parameter> parameters, AdamOptions options)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.options = options;
        var unique = new List<Parameter>();
        var names = new Dictionary<string, Parameter>();
        foreach (var p in parameters)
        {
            ArgumentNullException.ThrowIfNull(p, nameof(parameters));
            if (names.TryGetValue(p.Name, out var seen))
            {
                if (!ReferenceEquals(seen, p)) throw new ArgumentException($"two parameters are named '{p.Name}'", nameof(parameters));
                continue;
            }
            names.Add(p.Name, p);
            unique.Add(p);
        }
        this.parameters = [.. unique];
        m = [.. unique.Select(p => new float[p.Value.Length])];
        v = [.. unique.Select(p => new float[p.Value.Length])];
    }

    /// <summary>Settable so a learner can anneal the learning rate.</summary>
    public AdamOptions Options
    {
        get => options;
        set { ArgumentNullException.ThrowIfNull(value); value.Validate(); options = value; }
    }

    /// <summary>The number of updates applied (t).</summary>
    public long Steps { get; private set; }

    /// <summary>The parameters updated, without duplicates.</summary>
    public IReadOnlyList<Parameter> Parameters => parameters;

    /// <summary>The global L2 norm of all gradients (in double: each square is exact, the sum is over vector lanes).</summary>
    public double GradNorm()
    {
        double sum = 0;
        foreach (var p in parameters) sum += Vec.SumOfSquares(p.Grad);
        return Math.Sqrt(sum);
    }

    /// <summary>Clips the gradients (global norm, in place), applies one bias-corrected Adam update, and returns the
    /// gradient norm BEFORE clipping. Does not zero the grads. A non-finite norm (NaN or infinite gradients) is returned
    /// as is and spoils the parameters: check it, or the loss, before relying on the update.</summary>
    public double Step()
    {
        double norm = GradNorm();
        if (norm > options.MaxGradNorm)
        {
            float scale = (float)(options.MaxGradNorm / (norm + 1e-6));
            foreach (var p in parameters) Vec.Scale(p.Grad, scale);
        }
        Steps++;
        double b1 = options.Beta1, b2 = options.Beta2;
        float step = (float)(options.LearningRate / (1 - Math.Pow(b1, Steps))), root2 = (float)Math.Sqrt(1 - Math.Pow(b2, Steps));
        for (int k = 0; k < parameters.Length; k++)
            Vec.AdamStep(parameters[k].Value, parameters[k].Grad, m[k], v[k], (float)b1, (float)(1 - b1), (float)b2, (float)(1 - b2), step, root2, (float)options.Epsilon);
        return norm;
    }

    /// <summary>Sets every gradient to 0.</summary>
    public void ZeroGrad()
    {
        foreach (var p in parameters) Array.Clear(p.Grad);
    }

    /// <summary>The optimizer state as named tensors (copies): first and second moments per parameter, named
    /// param.Name + ".adam_m" / ".adam_v". <see cref="Steps"/> is saved by the caller.</summary>
    public IReadOnlyList<NamedTensor> State()
    {
        var state = new List<NamedTensor>(2 * parameters.Length);
        for (int k = 0; k < parameters.Length; k++)
        {
            var p = parameters[k];
            state.Add(new NamedTensor(p.Name + ".adam_m", (int[])p.Shape.Clone(), (float[])m[k].Clone()));
            state.Add(new NamedTensor(p.Name + ".adam_v", (int[])p.Shape.Clone(), (float[])v[k].Clone()));
        }
        return state;
    }

    /// <summary>Restores the moments saved by <see cref="State"/> and sets <see cref="Steps"/>. A missing name or a shape
    /// mismatch is a <see cref="SafeTensorsError"/>, and then nothing is changed. Extra tensors are ignored.</summary>
    public void RestoreState(IReadOnlyList<NamedTensor> state, long steps)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentOutOfRangeException.ThrowIfNegative(steps);
        var byName = SafeTensors.ByName(state, "optimizer state");
        var found = new NamedTensor[parameters.Length, 2];
        for (int k = 0; k < parameters.Length; k++)
            for (int s = 0; s < 2; s++)
                found[k, s] = SafeTensors.Find(byName, parameters[k].Name + (s == 0 ? ".adam_m" : ".adam_v"), parameters[k].Shape, "optimizer state");
        for (int k = 0; k < parameters.Length; k++)
        {
            found[k, 0].Data.CopyTo(m[k], 0);
            found[k, 1].Data.CopyTo(v[k], 0);
        }
        Steps = steps;
    }
}
