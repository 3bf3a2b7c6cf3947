// Scalar functions the ops are written with, each careful where WGSL's built-ins are not
// (overflow in tanh and sigmoid, negative bases in pow, no erf).

// tanh through exp(-2|x|), which cannot overflow.
fn safe_tanh(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

// 1 / (1 + e^-x), taking the exponential only of a non-positive number.
fn sigmoid(x: f32) -> f32 {
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

// The error function: Abramowitz & Stegun 7.1.26, |error| < 1.5e-7.
fn erf(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(x) * (1.0 - poly * exp(-a * a));
}

// x^p as Rust's powf: real results for negative bases and integer exponents, NaN otherwise.
fn powf(x: f32, p: f32) -> f32 {
    if (p == 0.0) {
        return 1.0;
    }
    if (x > 0.0) {
        return pow(x, p);
    }
    if (x == 0.0) {
        return select(0.0, bitcast<f32>(0x7f800000u), p < 0.0);
    }
    if (fract(p) != 0.0) {
        return nan();
    }
    let r = pow(-x, p);
    return select(r, -r, (abs(p) % 2.0) == 1.0);
}

fn gelu_tanh(x: f32) -> f32 {
    return 0.5 * x * (1.0 + safe_tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}
