#include <cmath>
#include <optional>

#include "common.h"

namespace chatanyone {
namespace {

DDIMCoeffs make_coeffs(double a_t, double a_prev, int prediction, double guidance, double eta, double clip,
                       bool has_uncond, bool has_noise) {
  if (!(a_t > 0 && a_t < 1)) throw nb::value_error(("alpha_t: expected 0 < alpha_t < 1, got " + std::to_string(a_t)).c_str());
  if (!(a_prev > 0 && a_prev <= 1))
    throw nb::value_error(("alpha_prev: expected 0 < alpha_prev <= 1, got " + std::to_string(a_prev)).c_str());
  if (prediction < 0 || prediction > 2) throw nb::value_error("prediction: expected 0 (eps), 1 (v) or 2 (x0)");
  if (!(eta >= 0) || !std::isfinite(eta)) throw nb::value_error("eta: expected a finite value >= 0");
  if (!std::isfinite(guidance)) throw nb::value_error("guidance: expected a finite value");
  const double sigma = eta * std::sqrt((1 - a_prev) / (1 - a_t)) * std::sqrt(std::max(0.0, 1 - a_t / a_prev));
  if (sigma > 0 && !has_noise) throw nb::value_error("noise: required when eta > 0");
  DDIMCoeffs c{};
  c.prediction = Prediction(prediction);
  c.sqrt_a = float(std::sqrt(a_t));
  c.sqrt_1ma = float(std::sqrt(1 - a_t));
  c.inv_sqrt_a = float(1 / std::sqrt(a_t));
  c.inv_sqrt_1ma = float(1 / std::sqrt(1 - a_t));
  c.sqrt_a_prev = float(std::sqrt(a_prev));
  c.dir_coef = float(std::sqrt(std::max(0.0, 1 - a_prev - sigma * sigma)));
  c.sigma = float(sigma);
  c.guidance = float(guidance);
  c.clip = (clip > 0 && std::isfinite(clip)) ? float(clip) : 0.f;
  c.has_uncond = has_uncond;
  c.has_noise = has_noise && sigma > 0;
  return c;
}

template <class A, class X>
void check_like(const A& a, const char* name, const X& x) {
  check_float(a.dtype(), name, false);
  check_shape(shape_of(a), name, shape_of(x));
}

bool check_step_devices(const In& x, const In& m, const OptIn& u, const OptIn& z, const Out& out) {
  const DevArg dx = dev(x, "x"), dm = dev(m, "model_out"), dout = dev(out, "out");
  if (u && z) return check_device({dx, dm, dev(*u, "uncond"), dev(*z, "noise"), dout});
  if (u) return check_device({dx, dm, dev(*u, "uncond"), dout});
  if (z) return check_device({dx, dm, dev(*z, "noise"), dout});
  return check_device({dx, dm, dout});
}

void run_step(bool cuda, const DDIMParams& p) {
#ifdef CHATANYONE_WITH_CUDA
  if (cuda) return check_cuda(ddim_step_cuda(p), "running the DDIM step");
#endif
  (void)cuda;
  ddim_step_cpu(p);
}

void ddim_step(In x, In model_out, OptIn uncond, OptIn noise, Out out, double alpha_t, double alpha_prev,
               int prediction, double guidance, double eta, double clip) {
  check_float(x.dtype(), "x", false);
  check_like(model_out, "model_out", x);
  check_like(out, "out", x);
  if (uncond) check_like(*uncond, "uncond", x);
  if (noise) check_like(*noise, "noise", x);
  const DDIMCoeffs c = make_coeffs(alpha_t, alpha_prev, prediction, guidance, eta, clip, bool(uncond), bool(noise));
  const bool cuda = check_step_devices(x, model_out, uncond, noise, out);
  DDIMParams p{int64_t(x.size()), c, static_cast<const float*>(x.data()),
               static_cast<const float*>(model_out.data()),
               uncond ? static_cast<const float*>(uncond->data()) : nullptr,
               noise ? static_cast<const float*>(noise->data()) : nullptr, static_cast<float*>(out.data())};
  nb::gil_scoped_release release;
  run_step(cuda, p);
}

// The whole step loop in C++; the GIL is held only around the denoiser call.
void ddim_sample(nb::callable denoiser, nb::object x_obj, std::vector<int64_t> timesteps,
                 std::vector<double> alpha_t, std::vector<double> alpha_prev, OptIn noise, int prediction,
                 double guidance, double eta, double clip) {
  Out x;
  try {
    x = nb::cast<Out>(x_obj, false);
  } catch (const nb::cast_error&) {
    throw nb::type_error("x_T: expected a writable C-contiguous float32 array");
  }
  check_float(x.dtype(), "x_T", false);
  const size_t S = timesteps.size();
  if (alpha_t.size() != S || alpha_prev.size() != S)
    throw nb::value_error("alphas: expected one alpha_t and one alpha_prev per timestep");
  const int64_t numel = int64_t(x.size());
  if (noise) {
    check_float(noise->dtype(), "noise", false);
    std::vector<int64_t> shape{int64_t(S)};
    for (int64_t s : shape_of(x)) shape.push_back(s);
    check_shape(shape_of(*noise), "noise", shape);
    check_device({dev(x, "x_T"), dev(*noise, "noise")});
  }
  for (size_t s = 0; s < S; ++s)  // validate every step before the first network call
    make_coeffs(alpha_t[s], alpha_prev[s], prediction, guidance, eta, clip, true, bool(noise));

  float* xp = static_cast<float*>(x.data());
  nb::gil_scoped_release release;
  for (size_t s = 0; s < S; ++s) {
    OptIn cond, unc;
    DDIMParams p{};
    bool cuda = false;
    {
      nb::gil_scoped_acquire acquire;
      nb::object res = denoiser(x_obj, timesteps[s]);
      try {
        if (nb::isinstance<nb::tuple>(res) || nb::isinstance<nb::list>(res)) {
          nb::sequence seq = nb::borrow<nb::sequence>(res);
          if (nb::len(seq) != 2)
            throw nb::value_error("denoiser: expected an array or a (cond, uncond) pair");
          cond = nb::cast<In>(seq[0], false);
          unc = nb::cast<In>(seq[1], false);
        } else {
          cond = nb::cast<In>(res, false);
        }
      } catch (const nb::cast_error&) {
        throw nb::type_error(
            "denoiser: expected it to return a C-contiguous array (numpy/torch/cupy) or a (cond, uncond) "
            "pair of them");
      }
      if (!unc && guidance != 1.0)
        throw nb::value_error("denoiser: guidance != 1 needs the denoiser to return (cond, uncond)");
      check_like(*cond, "denoiser output", x);
      if (unc) check_like(*unc, "denoiser uncond output", x);
      cuda = unc ? check_device({dev(x, "x_T"), dev(*cond, "denoiser output"), dev(*unc, "denoiser uncond output")})
                 : check_device({dev(x, "x_T"), dev(*cond, "denoiser output")});
      p.numel = numel;
      p.c = make_coeffs(alpha_t[s], alpha_prev[s], prediction, guidance, eta, clip, bool(unc), bool(noise));
      p.x = xp;
      p.model_out = static_cast<const float*>(cond->data());
      p.uncond = unc ? static_cast<const float*>(unc->data()) : nullptr;
      p.noise = noise ? static_cast<const float*>(noise->data()) + int64_t(s) * numel : nullptr;
      p.x_prev = xp;  // in place: each element is read before it is written
      // `res` dies here, but cond/unc keep the denoiser's arrays alive through the update.
    }
    run_step(cuda, p);
  }  // cond/unc drop here; nanobind takes the GIL itself when that frees a Python object
}

}  // namespace

void bind_ddim(nb::module_& m) {
  m.def("ddim_step", &ddim_step, nb::arg("x").noconvert(), nb::arg("model_out").noconvert(),
        nb::arg("uncond").noconvert().none(), nb::arg("noise").noconvert().none(), nb::arg("out").noconvert(),
        nb::arg("alpha_t"), nb::arg("alpha_prev"), nb::arg("prediction"), nb::arg("guidance"), nb::arg("eta"),
        nb::arg("clip"), "One fused DDIM update into `out` (may alias x); see chatanyone.ops.ddim_step.");
  m.def("ddim_sample", &ddim_sample, nb::arg("denoiser"), nb::arg("x"), nb::arg("timesteps"), nb::arg("alpha_t"),
        nb::arg("alpha_prev"), nb::arg("noise").noconvert().none(), nb::arg("prediction"), nb::arg("guidance"),
        nb::arg("eta"), nb::arg("clip"),
        "The DDIM step loop around `denoiser`, updating `x` in place; see chatanyone.ops.ddim_sample.");
}

}  // namespace chatanyone
