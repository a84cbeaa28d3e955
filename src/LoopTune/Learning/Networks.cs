using System.Runtime.CompilerServices;
using LoopTune.Learning.Nn;

namespace LoopTune.Learning;

/// <summary>The shape of a policy's network, stored with its weights so a checkpoint is only ever loaded into the
/// network it came from.</summary>
/// <param name="Kind">"dqn" (dueling Q-network) or "ppo" (actor and critic).</param>
/// <param name="Observations">Input size.</param>
/// <param name="Actions">Output size (one Q-value or logit per action).</param>
/// <param name="Hidden">Widths of the hidden layers.</param>
/// <param name="Activation">"relu" or "tanh".</param>
/// <param name="LayerNorm">Whether each hidden layer is followed by a layer norm (before the activation).</param>
public sealed record NetworkShape(string Kind, int Observations, int Actions, int[] Hidden, string Activation, bool LayerNorm)
{
    public override string ToString() =>
        $"{Kind} {Observations} -> [{string.Join(", ", Hidden)}] {Activation}{(LayerNorm ? "+layernorm" : "")} -> {Actions}";

    public bool SameAs(NetworkShape o) => Kind == o.Kind && Observations == o.Observations && Actions == o.Actions
        && Hidden.SequenceEqual(o.Hidden) && Activation == o.Activation && LayerNorm == o.LayerNorm;
}

/// <summary>A multilayer perceptron: Dense, [LayerNorm], activation per hidden layer, then a Dense output layer
/// initialised with <paramref name="outputGain"/> (CleanRL's orthogonal init: sqrt 2 hidden, 0.01 policy, 1 value).</summary>
public sealed class Mlp : ILayer
{
    readonly Sequential net;

    public Mlp(string name, int inputs, int[] hidden, int outputs, string activation, bool layerNorm, double outputGain, Random rng)
    {
        var layers = new List<ILayer>();
        int width = inputs;
        for (int i = 0; i < hidden.Length; i++)
        {
            layers.Add(new Dense(width, hidden[i], rng, $"{name}.{i}"));
            if (layerNorm) layers.Add(new LayerNorm(hidden[i], $"{name}.{i}.norm"));
            layers.Add(activation switch
            {
                "relu" => new Relu(),
                "tanh" => new Tanh(),
                _ => throw new ArgumentException($"unknown activation '{activation}' (relu, tanh)"),
            });
            width = hidden[i];
        }
        layers.Add(new Dense(width, outputs, rng, $"{name}.out", outputGain));
        net = new Sequential([.. layers]);
    }

    public IReadOnlyList<Parameter> Parameters => net.Parameters;

    /// <summary>Whether the layers reuse their batch buffers (<see cref="Layer.ReusesBuffers"/>).</summary>
    public bool ReusesBuffers { get => net.ReusesBuffers; set => net.ReusesBuffers = value; }

    public Matrix Forward(Matrix x) => net.Forward(x);
    public Matrix Backward(Matrix dy) => net.Backward(dy);

    /// <inheritdoc cref="Sequential.Backward(Matrix, bool)"/>
    public Matrix? Backward(Matrix dy, bool inputGradient) => net.Backward(dy, inputGradient);
}

/// <summary>What a trained policy offers a rollout: a preference per action for a batch of observations (Q-values or
/// logits); the rollout takes the masked argmax.</summary>
public interface IPolicyNetwork
{
    NetworkShape Shape { get; }
    IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>Preferences [batch, actions] for observations [batch, inputs].</summary>
    Matrix Scores(Matrix observations);
}

/// <summary>
/// The dueling Q-network (Wang et al. 2016): a trunk, then a state value V and advantages A, combined as
/// Q(s, a) = V(s) + A(s, a) - mean_a A(s, a). The value and the advantages are the two outputs of one final layer
/// (column 0 is V), which is the same function as two heads.
/// </summary>
public sealed class QNetwork : IPolicyNetwork
{
    readonly Mlp net;
    Matrix? q, dva;
    float[] rowSums = [];

    public QNetwork(NetworkShape shape, Random rng)
    {
        Shape = shape;
        net = new Mlp("q", shape.Observations, shape.Hidden, shape.Actions + 1, shape.Activation, shape.LayerNorm, 1.0, rng);
    }

    public NetworkShape Shape { get; }
    public IReadOnlyList<Parameter> Parameters => net.Parameters;
    public Matrix Scores(Matrix observations) => Forward(observations);

    /// <summary>Whether batches (2 rows or more) reuse the network's buffers (<see cref="Layer.ReusesBuffers"/>): then
    /// <see cref="Forward"/>'s result is valid until the next Forward, and the network is used from one thread (a learner's).
    /// One row (acting) always gets a new matrix.</summary>
    public bool ReusesBuffers { get => net.ReusesBuffers; set => net.ReusesBuffers = value; }

    /// <summary>Q-values [batch, actions].</summary>
    public Matrix Forward(Matrix x)
    {
        var va = net.Forward(x);
        int n = Shape.Actions;
        var result = Layer.Buffer(ref q, x.Rows, n, ReusesBuffers);
        var sums = RowSums(va, 1);
        for (int b = 0; b < x.Rows; b++)
        {
            ReadOnlySpan<float> row = va.Row(b);
            Vec.AddThenSubtract(row[0], row[1..], sums[b] / n, result.Row(b));
        }
        return result;
    }

    /// <summary>Backpropagates dLoss/dQ of the last <see cref="Forward"/> into the parameters' gradients (not into the
    /// observations: nothing needs their gradient).</summary>
    public void Backward(Matrix dq)
    {
        int n = Shape.Actions;
        var d = Layer.Buffer(ref dva, dq.Rows, n + 1, ReusesBuffers);
        var sums = RowSums(dq, 0);
        for (int b = 0; b < dq.Rows; b++)
        {
            Span<float> to = d.Row(b);
            to[0] = sums[b];
            Vec.Subtract(dq.Row(b), sums[b] / n, to[1..]);
        }
        net.Backward(d, inputGradient: false);
    }

    /// <summary>Each row's sum of its columns from <paramref name="first"/> on, one running float sum in order per row.</summary>
    Span<float> RowSums(Matrix m, int first)
    {
        if (rowSums.Length < m.Rows) rowSums = new float[m.Rows];
        var sums = rowSums.AsSpan(0, m.Rows);
        Vec.RunningRowSums(m.Data, m.Cols, first, sums);
        return sums;
    }
}

/// <summary>PPO's actor and critic: two separate perceptrons of the same hidden shape, the actor's output layer
/// initialised small (gain 0.01) so the first policy is near uniform over the legal actions, the critic's with gain 1.</summary>
public sealed class ActorCritic : IPolicyNetwork
{
    public ActorCritic(NetworkShape shape, Random rng)
    {
        Shape = shape;
        Actor = new Mlp("actor", shape.Observations, shape.Hidden, shape.Actions, shape.Activation, shape.LayerNorm, 0.01, rng);
        Critic = new Mlp("critic", shape.Observations, shape.Hidden, 1, shape.Activation, shape.LayerNorm, 1.0, rng);
    }

    public NetworkShape Shape { get; }
    public Mlp Actor { get; }
    public Mlp Critic { get; }
    public IReadOnlyList<Parameter> Parameters => [.. Actor.Parameters, .. Critic.Parameters];
    public Matrix Scores(Matrix observations) => Actor.Forward(observations);
}

/// <summary>Helpers shared by the learners and the rollouts.</summary>
public static class Net
{
    /// <summary>A network of <paramref name="shape"/> with weights drawn from <paramref name="rng"/>.</summary>
    public static IPolicyNetwork Create(NetworkShape shape, Random rng) => shape.Kind switch
    {
        "dqn" => new QNetwork(shape, rng),
        "ppo" => new ActorCritic(shape, rng),
        _ => throw new ArgumentException($"unknown network kind '{shape.Kind}' (dqn, ppo)"),
    };

    /// <summary>One observation as a batch of one.</summary>
    public static Matrix Row(float[] x) => new(1, x.Length, (float[])x.Clone());

    /// <summary>The index of the largest score among the legal actions (the lowest index on a tie).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int MaskedArgmax(ReadOnlySpan<float> scores, ReadOnlySpan<bool> mask)
    {
        mask = mask[..scores.Length];
        int best = -1;
        float bestScore = 0;   // scores[best]
        for (int a = 0; a < scores.Length; a++)
        {
            float s = scores[a];
            bool better = mask[a] & (best < 0 | s > bestScore);
            best = better ? a : best;
            bestScore = better ? s : bestScore;
        }
        return best >= 0 ? best : throw new InvalidOperationException("no legal action");
    }

    /// <summary>Copies every parameter value of <paramref name="from"/> into <paramref name="to"/> (same shape).</summary>
    public static void CopyWeights(IPolicyNetwork from, IPolicyNetwork to)
    {
        var (a, b) = (from.Parameters, to.Parameters);
        for (int i = 0; i < a.Count; i++) a[i].Value.CopyTo(b[i].Value, 0);
    }

    /// <summary>Every parameter value of <paramref name="net"/>, one after the other: what the learner sends its actors.</summary>
    public static float[] Flatten(IPolicyNetwork net)
    {
        var flat = new float[net.Parameters.Sum(p => p.Value.Length)];
        int at = 0;
        foreach (var p in net.Parameters) { p.Value.CopyTo(flat, at); at += p.Value.Length; }
        return flat;
    }

    /// <summary>Puts back what <see cref="Flatten"/> gave into <paramref name="net"/> (same shape).</summary>
    public static void LoadFlat(IPolicyNetwork net, float[] flat)
    {
        int total = net.Parameters.Sum(p => p.Value.Length);
        if (flat.Length != total) throw new ArgumentException($"{flat.Length} weights for a network of {total} ({net.Shape})", nameof(flat));
        int at = 0;
        foreach (var p in net.Parameters) { flat.AsSpan(at, p.Value.Length).CopyTo(p.Value); at += p.Value.Length; }
    }
}
