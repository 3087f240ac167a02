//! Tests of the probe: training, determinism, the networks, and the CUDA cross-checks.

use super::*;
use crate::dataset::Table;

/// Two well separated Gaussian blobs in 4 dimensions.
fn blobs(n: usize) -> (Payload, Subset) {
    let mut rng = StdRng::seed_from_u64(3);
    let mut values = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let c = (i % 2) as u32;
        let centre = if c == 0 { -2.0 } else { 2.0 };
        values.extend((0..4).map(|_| centre + rng.random_range(-1.0f32..1.0)));
        labels.push(c);
    }
    let table = Table {
        columns: (0..4).map(|j| format!("x{j}")).collect(),
        values,
    };
    let subset = Subset {
        rows: (0..n as u32).collect(),
        labels,
        n_classes: 2,
        excluded: Vec::new(),
    };
    (Payload::Table(table), subset)
}

#[test]
fn probe_learns_separable_classes_and_is_deterministic() {
    let (payload, subset) = blobs(200);
    let config = ProbeConfig {
        epochs: Some(40),
        width: 8,
        ..Default::default()
    };
    let run = || {
        embed(
            &payload,
            None,
            &subset,
            &config,
            &Device::Cpu,
            &Progress::hidden(),
        )
        .unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a.matrix.dims(), [200, 8]);
    let t = a.training.as_ref().unwrap();
    assert_eq!(t.epochs, 40);
    assert!(*t.accuracy.last().unwrap() > 0.95, "{:?}", t.accuracy);
    assert!(t.loss.last() < t.loss.first(), "{:?}", t.loss);
    assert_eq!(a.to_host().unwrap(), b.to_host().unwrap());
}

/// `n` images of `w x h x c` with the given pixel pattern (`pixel(i)` for byte i).
fn images(w: usize, h: usize, c: usize, n: usize, pixel: impl Fn(usize) -> u8) -> Images {
    Images {
        width: w as u32,
        height: h as u32,
        channels: c as u32,
        pixels: (0..n * w * h * c).map(pixel).collect(),
        status: vec![crate::dataset::ImageStatus::Failed(String::new()); n],
    }
}

/// Rows 0..n alternating between two classes.
fn two_classes(n: usize) -> Subset {
    Subset {
        rows: (0..n as u32).collect(),
        labels: (0..n as u32).map(|i| i % 2).collect(),
        n_classes: 2,
        excluded: Vec::new(),
    }
}

#[test]
fn images_get_a_cnn_with_the_requested_width() {
    let n = 20;
    let img = images(12, 10, 3, n, |i| (i % 251) as u8);
    let subset = two_classes(n);
    let config = ProbeConfig {
        epochs: Some(1),
        width: 6,
        ..Default::default()
    };
    let e = embed(
        &Payload::Images(img),
        None,
        &subset,
        &config,
        &Device::Cpu,
        &Progress::hidden(),
    )
    .unwrap();
    assert_eq!(e.matrix.dims(), [20, 6]);
    assert!(e.training.unwrap().architecture.starts_with("cnn 3x10x12"));
}

#[test]
fn the_mlp_probe_takes_images_pooled_like_the_cnns() {
    // 70 x 66 RGB: pooled by 3 (70 / 32 rounded up) to 22 x 23, edge pixels dropped.
    let (w, h, n) = (70usize, 66usize, 6usize);
    let img = images(w, h, 3, n, |i| (i * 7 % 256) as u8);
    let subset = Subset {
        rows: vec![4, 1],
        labels: vec![0, 1],
        n_classes: 2,
        excluded: Vec::new(),
    };
    let (x, per) = pooled_pixels(&img, &subset);
    assert_eq!(per, 22 * 23 * 3);
    assert_eq!(x.len(), 2 * per);
    // Row 1 of the output is image 1; its pooled pixel (y 5, x 7), channel 2.
    let image = img.image(1);
    let mut sum = 0u32;
    for dy in 0..3 {
        for dx in 0..3 {
            sum += image[((5 * 3 + dy) * w + 7 * 3 + dx) * 3 + 2] as u32;
        }
    }
    let got = x[per + (5 * 23 + 7) * 3 + 2];
    assert!((got - sum as f32 / (255.0 * 9.0)).abs() < 1e-6);

    let config = ProbeConfig {
        epochs: Some(1),
        width: 5,
        net: ProbeNet::Mlp,
        ..Default::default()
    };
    let subset = two_classes(n);
    let payload = Payload::Images(img);
    let e = embed(
        &payload,
        None,
        &subset,
        &config,
        &Device::Cpu,
        &Progress::hidden(),
    )
    .unwrap();
    assert_eq!(e.matrix.dims(), [n, 5]);
    let arch = e.training.unwrap().architecture;
    assert_eq!(arch, format!("mlp {}-5-5", 22 * 23 * 3));
}

#[test]
fn asking_for_the_cnn_where_it_cannot_run_is_an_error() {
    let config = ProbeConfig {
        net: ProbeNet::Cnn,
        ..Default::default()
    };
    let (table, subset) = blobs(10);
    let run = |payload: &Payload, subset: &Subset| {
        embed(
            payload,
            None,
            subset,
            &config,
            &Device::Cpu,
            &Progress::hidden(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    assert!(run(&table, &subset).contains("needs an image payload"));
    // 6 x 6 images leave under 8 px for the CNN.
    let img = images(6, 6, 1, 10, |_| 9);
    let msg = run(&Payload::Images(img), &subset);
    assert!(
        msg.contains("6x6") && msg.contains("--probe-net mlp"),
        "{msg}"
    );
}

/// The pool the GPU runs (candle's ops) against the CPU's fused op, values and gradient.
#[test]
fn both_pools_agree_on_values_and_gradient() {
    let mut rng = StdRng::seed_from_u64(6);
    let v: Vec<f32> = (0..2 * 3 * 9 * 6)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let x = Var::from_vec(v, (2, 3, 9, 6), &Device::Cpu).unwrap();
    let host = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let run = |pool: fn(&Tensor) -> candle_core::Result<Tensor>| {
        let y = pool(&x).unwrap();
        let g = (&y * &y).unwrap().sum_all().unwrap().backward().unwrap();
        (host(&y), host(g.get(&x).unwrap()))
    };
    assert_eq!(run(pool::relu_max_pool2), run(relu_pool_reshaped));
}

/// Two classes of 16x16 grey images: a bright top half or a bright bottom half, in noise.
#[cfg(feature = "cuda")]
fn halves(n: usize) -> (Payload, Subset) {
    let mut rng = StdRng::seed_from_u64(8);
    let mut pixels = Vec::with_capacity(n * 256);
    for i in 0..n {
        pixels.extend((0..256).map(|p| {
            let bright = (p < 128) == (i % 2 == 0);
            let base = if bright { 170 } else { 60 };
            base + rng.random_range(0..60u8)
        }));
    }
    let img = Images {
        width: 16,
        height: 16,
        channels: 1,
        pixels,
        status: vec![crate::dataset::ImageStatus::Failed(String::new()); n],
    };
    let subset = Subset {
        rows: (0..n as u32).collect(),
        labels: (0..n as u32).map(|i| i % 2).collect(),
        n_classes: 2,
        excluded: Vec::new(),
    };
    (Payload::Images(img), subset)
}

/// The probe's convolution on the GPU (candle's `conv2d`) against the CPU op, values and
/// the gradients of input, weight and bias.
#[cfg(feature = "cuda")]
#[test]
fn cuda_convolution_matches_the_cpu_op() {
    let Some(gpu) = crate::device::test_gpu() else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(4);
    let mut random = |shape: &[usize]| {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    };
    let (n, c, h, w, o) = (33, 16, 14, 14, 32);
    let (x, weight, bias, probe) = (
        random(&[n, c, h, w]),
        random(&[o, c, 3, 3]),
        random(&[o]),
        random(&[n, o, h, w]),
    );
    let run = |device: &Device| {
        let vars: Vec<Var> = [&x, &weight, &bias]
            .iter()
            .map(|t| Var::from_tensor(&t.to_device(device).unwrap()).unwrap())
            .collect();
        let conv = Conv {
            weight: vars[1].as_tensor().clone(),
            bias: vars[2].as_tensor().clone(),
        };
        let y = conv.forward(&vars[0]).unwrap();
        let grads = (&y * probe.to_device(device).unwrap())
            .and_then(|l| l.sum_all())
            .and_then(|l| l.backward())
            .unwrap();
        let host = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut out = vec![host(&y)];
        out.extend(vars.iter().map(|v| host(grads.get(v).unwrap())));
        out
    };
    let (cpu, cuda) = (run(&Device::Cpu), run(&gpu));
    for (what, (a, b)) in ["output", "input grad", "weight grad", "bias grad"]
        .iter()
        .zip(cpu.iter().zip(&cuda))
    {
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{what}: {diff} (scale {scale})"
        );
    }
}

/// The whole probe trained on the GPU learns what it learns on the CPU. The runs are not
/// bitwise equal (the devices add in different orders), so the check is on what they learn.
#[cfg(feature = "cuda")]
#[test]
fn cuda_probe_learns_like_the_cpu_probe() {
    let Some(gpu) = crate::device::test_gpu() else {
        return;
    };
    let (payload, subset) = halves(400);
    let config = ProbeConfig {
        epochs: Some(5),
        width: 16,
        ..Default::default()
    };
    for device in [Device::Cpu, gpu] {
        let e = embed(
            &payload,
            None,
            &subset,
            &config,
            &device,
            &Progress::hidden(),
        )
        .unwrap();
        assert_eq!(e.matrix.dims(), [400, 16]);
        let t = e.training.unwrap();
        assert!(
            t.architecture.starts_with("cnn 1x16x16"),
            "{}",
            t.architecture
        );
        let last = *t.accuracy.last().unwrap();
        assert!(
            last > 0.95,
            "{}: accuracy {:?}",
            crate::device::name(&device),
            t.accuracy
        );
    }
}
